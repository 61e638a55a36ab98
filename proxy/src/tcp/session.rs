//! The life of one tcp-mode connection (lb.md §11): optional PROXY header from the client,
//! optional SNI inspection, route, server pick (same balancer and queues as HTTP), connect
//! with retries and redispatch (§6), optional PROXY header to the server, the bytes read so
//! far, then the tunnel; one `tcplog` line at the end (§15).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::clienthello::Inspect;
use super::first_bytes::{self, FirstBytesError, Hello};
use crate::config::{FrontendConfig, HostMatch, ProxyVersion, RuleAction};
use crate::observe::accesslog::{
    format_tcplog, LogServer, TcpLogEntry, TermCause, TermPhase, TerminationState,
};
use crate::observe::counters::ProxyCounters;
use crate::observe::meters::Meters;
use crate::proxy_header;
use crate::upstream::backend::{Acquire, Backend, Slot};
use crate::upstream::relay::{self, Moved, RelayEnd};

/// A tcp-mode frontend at run time.
pub(crate) struct TcpFrontend {
    name: Arc<str>,
    cfg: FrontendConfig,
    routes: TcpRoutes,
    backends: Arc<[Arc<Backend>]>,
    access_log: bool,
    counters: Arc<ProxyCounters>,
    /// Connections open on this frontend (log `fc`), counted by the listener.
    connections: Arc<AtomicUsize>,
    /// The frontend's stats meters (sessions are counted by the listener, bytes here).
    meters: Arc<Meters>,
}

impl TcpFrontend {
    pub(crate) fn new(
        cfg: FrontendConfig,
        backends: Arc<[Arc<Backend>]>,
        access_log: bool,
        counters: Arc<ProxyCounters>,
        connections: Arc<AtomicUsize>,
        meters: Arc<Meters>,
    ) -> Self {
        TcpFrontend {
            name: cfg.name.as_str().into(),
            routes: TcpRoutes::new(&cfg, &backends),
            cfg,
            backends,
            access_log,
            counters,
            connections,
            meters,
        }
    }

    fn backends(&self) -> &[Arc<Backend>] {
        &self.backends
    }
}

/// The routing table of a tcp-mode frontend.
struct TcpRoutes {
    sni: Vec<(HostMatch, usize)>,
    default: Option<usize>,
}

impl TcpRoutes {
    fn new(cfg: &FrontendConfig, backends: &[Arc<Backend>]) -> Self {
        let index = |name: &str| backends.iter().position(|b| &*b.name == name);
        TcpRoutes {
            sni: cfg
                .routes
                .iter()
                .filter_map(|r| Some((r.sni.clone()?, index(&r.backend)?)))
                .collect(),
            default: cfg.default_backend.as_deref().and_then(index),
        }
    }

    fn inspects(&self) -> bool {
        !self.sni.is_empty()
    }

    fn pick(&self, sni: Option<&str>) -> Option<usize> {
        sni.and_then(|name| {
            self.sni
                .iter()
                .find(|(m, _)| sni_matches(m, name))
                .map(|(_, b)| *b)
        })
        .or(self.default)
    }
}

/// Case-insensitive; `*.example.test` matches exactly one more label (lb.md §11).
fn sni_matches(pattern: &HostMatch, name: &str) -> bool {
    match pattern {
        HostMatch::Exact(exact) => name.eq_ignore_ascii_case(exact),
        HostMatch::Suffix(suffix) => {
            name.len() > suffix.len()
                && name.is_char_boundary(name.len() - suffix.len())
                && name[name.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
                && !name[..name.len() - suffix.len()].contains('.')
        }
    }
}

/// What the log line says about one session.
struct Outcome {
    backend: Option<usize>,
    server: Option<Arc<str>>,
    /// The server's index in its backend, once one was connected or tried.
    server_index: Option<usize>,
    tw: Option<Duration>,
    tc: Option<Duration>,
    retries: u32,
    redispatched: bool,
    cause: TermCause,
    phase: TermPhase,
}

impl Outcome {
    fn new() -> Self {
        Outcome {
            backend: None,
            server: None,
            server_index: None,
            tw: None,
            tc: None,
            retries: 0,
            redispatched: false,
            cause: TermCause::Normal,
            phase: TermPhase::Done,
        }
    }

    fn ended(&mut self, cause: TermCause, phase: TermPhase) {
        self.cause = cause;
        self.phase = phase;
    }
}

pub(crate) async fn serve(
    fe: Arc<TcpFrontend>,
    mut client: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    mut drain: watch::Receiver<Option<Duration>>,
) {
    let routes = &fe.routes;
    let accepted = Instant::now();
    let date = SystemTime::now();
    let _ = client.set_nodelay(true);
    let mut pending = Vec::new();
    let (src, dst) = if fe.cfg.accept_proxy {
        let timeout = fe.cfg.timeouts.client;
        match first_bytes::read_proxy_header(&mut client, &mut pending, peer, local, timeout).await
        {
            Ok(addrs) => addrs,
            Err(e) => return refuse(&fe, peer, e),
        }
    } else {
        (peer, local)
    };
    let mut out = Outcome::new();
    if denied(&fe, src) {
        out.ended(TermCause::Proxy, TermPhase::Request);
        return log(&fe, src, date, accepted, &out, 0);
    }
    let mut sni = None;
    if routes.inspects() {
        let timeout = fe.cfg.inspect_timeout;
        match first_bytes::read_client_hello(&mut client, &mut pending, timeout).await {
            Ok(Hello::Read(Inspect::Sni(name))) => sni = name,
            Ok(Hello::Read(Inspect::NotTls)) | Ok(Hello::Read(Inspect::NeedMore)) => {}
            Ok(Hello::TimedOut) => {
                tracing::debug!(frontend = %fe.name, client = %src, "no complete ClientHello within {timeout:?}: default backend");
            }
            Ok(Hello::Read(Inspect::TooLarge)) => {
                return refuse_hello(&fe, src, "ClientHello larger than 16 KiB")
            }
            Ok(Hello::Read(Inspect::Malformed(why))) => return refuse_hello(&fe, src, why),
            Err(e) => return refuse(&fe, src, e),
        }
    }
    out.backend = routes.pick(sni.as_deref());
    let Some(backend) = out.backend.and_then(|i| fe.backends().get(i).cloned()) else {
        out.ended(TermCause::Proxy, TermPhase::Request);
        return log(&fe, src, date, accepted, &out, 0);
    };
    let moved = Moved::default();
    run(
        &fe,
        &backend,
        &mut client,
        src,
        dst,
        &pending,
        &moved,
        &mut out,
        &mut drain,
    )
    .await;
    let tt = accepted.elapsed();
    count(&fe, &backend, &out, &moved, tt);
    log(
        &fe,
        src,
        date,
        accepted,
        &out,
        moved.to_client.load(Ordering::Relaxed),
    );
}

/// The stats counters of a finished session: bytes each way on the frontend, backend and
/// server (HAProxy `bin`/`bout`), the session time (`ttime`), connect errors, retries and
/// redispatches. Sessions themselves are counted when they start (listener, server slot).
fn count(fe: &TcpFrontend, backend: &Backend, out: &Outcome, moved: &Moved, tt: Duration) {
    let to_server = moved.to_server.load(Ordering::Relaxed);
    let to_client = moved.to_client.load(Ordering::Relaxed);
    Meters::add(&fe.meters.bytes_in, to_server);
    Meters::add(&fe.meters.bytes_out, to_client);
    let server = out
        .server_index
        .and_then(|i| backend.servers.get(i))
        .map(|s| &*s.meters);
    for m in std::iter::once(&*backend.meters).chain(server) {
        Meters::add(&m.bytes_in, to_server);
        Meters::add(&m.bytes_out, to_client);
        Meters::add(&m.retries, u64::from(out.retries));
        if out.redispatched {
            Meters::add(&m.redispatches, 1);
        }
        let server_side = matches!(out.cause, TermCause::ServerAbort | TermCause::ServerTimeout);
        if server_side && out.phase == TermPhase::Connect && out.server_index.is_some() {
            Meters::add(&m.errors_connect, 1);
        }
        if out.tc.is_some() {
            m.total_time.add(tt);
        }
    }
}

/// The frontend's `rules` on the client's address (tcp mode matches on `src` only; a deny
/// closes the connection, counted in `dreq` and logged `PR`).
fn denied(fe: &TcpFrontend, src: SocketAddr) -> bool {
    let action = fe.cfg.rules.iter().find(|r| r.matches_src(src.ip()));
    let deny = matches!(action, Some(r) if matches!(r.action, RuleAction::Deny(_)));
    if deny {
        Meters::add(&fe.meters.denied_requests, 1);
    }
    deny
}

/// Picks a server, connects and runs the tunnel; fills `out` on the way.
#[allow(clippy::too_many_arguments)]
async fn run(
    fe: &TcpFrontend,
    backend: &Arc<Backend>,
    client: &mut TcpStream,
    src: SocketAddr,
    dst: SocketAddr,
    pending: &[u8],
    moved: &Moved,
    out: &mut Outcome,
    drain: &mut watch::Receiver<Option<Duration>>,
) {
    let queued = Instant::now();
    let slot = match backend.acquire(None, None, src.ip()) {
        Acquire::Slot(s) => s,
        Acquire::Queued(t) => match t.wait(backend.cfg.timeouts.queue).await {
            Some(s) => s,
            None => return out.ended(TermCause::ServerTimeout, TermPhase::Queue),
        },
        Acquire::NoServer => return out.ended(TermCause::ServerAbort, TermPhase::Connect),
    };
    out.tw = Some(queued.elapsed());
    let connecting = Instant::now();
    let Some((slot, mut server)) = connect(backend, slot, src, out).await else {
        return;
    };
    out.tc = Some(connecting.elapsed());
    out.server = Some(slot.server().name.clone());
    out.server_index = Some(slot.server_index());
    let mut head = match backend.cfg.send_proxy {
        Some(ProxyVersion::V1) => proxy_header::encode_v1(src, dst),
        Some(ProxyVersion::V2) => proxy_header::encode_v2(src, dst),
        None => Vec::new(),
    };
    head.extend_from_slice(pending);
    if !head.is_empty() {
        if let Err(e) = server.write_all(&head).await {
            tracing::debug!(backend = %backend.name, error = %e, "server closed before the first bytes");
            return out.ended(TermCause::ServerAbort, TermPhase::Data);
        }
        moved
            .to_server
            .fetch_add(pending.len() as u64, Ordering::Relaxed);
    }
    let idle = backend
        .cfg
        .timeouts
        .tunnel
        .unwrap_or(fe.cfg.timeouts.client.min(backend.cfg.timeouts.server));
    let mut marked_down = slot.server().marked_down();
    marked_down.borrow_and_update();
    let shutdown_on_down = backend.cfg.shutdown_sessions_on_down;
    let tunnel = relay::relay_tcp(client, &mut server, idle, moved);
    tokio::pin!(tunnel);
    let end = tokio::select! {
        end = &mut tunnel => end,
        Ok(()) = marked_down.changed(), if shutdown_on_down => {
            return out.ended(TermCause::Proxy, TermPhase::Data);
        }
        grace = wait_for_drain(drain) => {
            match tokio::time::timeout(grace, &mut tunnel).await {
                Ok(end) => end,
                Err(_) => return out.ended(TermCause::Proxy, TermPhase::Data),
            }
        }
    };
    match end {
        RelayEnd::Closed => {}
        RelayEnd::ClientError => out.ended(TermCause::ClientAbort, TermPhase::Data),
        RelayEnd::ServerError => out.ended(TermCause::ServerAbort, TermPhase::Data),
        RelayEnd::Idle if fe.cfg.timeouts.client <= backend.cfg.timeouts.server => {
            out.ended(TermCause::ClientTimeout, TermPhase::Data)
        }
        RelayEnd::Idle => out.ended(TermCause::ServerTimeout, TermPhase::Data),
    }
    drop(slot);
}

/// Connect attempts (lb.md §6): `retries` more after the first, a pause before another try
/// on the same server; with `redispatch` another server when Backend::redispatch_now says so.
async fn connect(
    backend: &Arc<Backend>,
    mut slot: Slot,
    src: SocketAddr,
    out: &mut Outcome,
) -> Option<(Slot, TcpStream)> {
    let cfg = &backend.cfg;
    let attempts = cfg.retries.saturating_add(1);
    let mut last_timeout = false;
    for attempt in 0..attempts {
        if attempt > 0 {
            out.retries = attempt;
            let failed = slot.server_index();
            let mut switched = false;
            if backend.redispatch_now(failed, false, attempt + 1 == attempts) {
                drop(slot);
                slot = match backend.acquire(None, Some(failed), src.ip()) {
                    Acquire::Slot(s) => s,
                    Acquire::Queued(t) => match t.wait(cfg.timeouts.queue).await {
                        Some(s) => s,
                        None => {
                            out.ended(TermCause::ServerTimeout, TermPhase::Queue);
                            return None;
                        }
                    },
                    Acquire::NoServer => {
                        out.ended(TermCause::ServerAbort, TermPhase::Connect);
                        return None;
                    }
                };
                switched = slot.server_index() != failed;
                out.redispatched |= switched;
            }
            if !switched {
                tokio::time::sleep(cfg.timeouts.connect.min(Duration::from_secs(1))).await;
            }
        }
        let addr = slot.server().cfg.addr;
        match tokio::time::timeout(cfg.timeouts.connect, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Some((slot, stream));
            }
            Ok(Err(e)) => {
                last_timeout = false;
                tracing::debug!(backend = %backend.name, server = %slot.server().name, error = %e, "connect failed");
            }
            Err(_) => {
                last_timeout = true;
                tracing::debug!(backend = %backend.name, server = %slot.server().name, "connect timeout");
            }
        }
    }
    out.server = Some(slot.server().name.clone());
    out.server_index = Some(slot.server_index());
    let cause = if last_timeout {
        TermCause::ServerTimeout
    } else {
        TermCause::ServerAbort
    };
    out.ended(cause, TermPhase::Connect);
    None
}

async fn wait_for_drain(rx: &mut watch::Receiver<Option<Duration>>) -> Duration {
    let grace = rx.wait_for(Option::is_some).await.ok().and_then(|v| *v);
    match grace {
        Some(d) => d,
        None => std::future::pending().await,
    }
}

/// Closed before a server was picked: one line with the reason (a connection that sent
/// nothing at all is closed silently, as in HTTP mode).
fn refuse(fe: &TcpFrontend, client: SocketAddr, e: FirstBytesError) {
    match e {
        FirstBytesError::Silent => {}
        e => {
            Meters::add(&fe.meters.errors_request, 1);
            tracing::warn!(frontend = %fe.name, %client, "connection closed: {e}")
        }
    }
}

fn refuse_hello(fe: &TcpFrontend, client: SocketAddr, why: &str) {
    Meters::add(&fe.meters.errors_request, 1);
    tracing::warn!(frontend = %fe.name, %client, "connection closed: bad TLS ClientHello: {why}");
}

fn log(
    fe: &TcpFrontend,
    client: SocketAddr,
    date: SystemTime,
    accepted: Instant,
    out: &Outcome,
    bytes: u64,
) {
    if !fe.access_log {
        return;
    }
    let backend = out.backend.and_then(|i| fe.backends().get(i).cloned());
    let (bc, sc) = match &backend {
        Some(b) => {
            let sc = out
                .server
                .as_ref()
                .and_then(|n| b.servers.iter().find(|s| &s.name == n))
                .map_or(0, |s| s.inflight());
            let bc: usize = b.servers.iter().map(|s| s.inflight()).sum::<usize>() + b.queued();
            (bc, sc)
        }
        None => (0, 0),
    };
    let entry = TcpLogEntry {
        client,
        accept_date: date,
        frontend: fe.name.clone(),
        tls: false,
        backend: backend.map_or_else(|| fe.name.clone(), |b| b.name.clone()),
        server: match &out.server {
            Some(name) => LogServer::Named(name.clone()),
            None => LogServer::NoServer,
        },
        tw: out.tw,
        tc: out.tc,
        tt: accepted.elapsed(),
        bytes,
        termination: TerminationState::new(
            out.cause,
            out.phase,
            Default::default(),
            Default::default(),
        ),
        ac: fe.counters.connections.load(Ordering::Relaxed) as u32,
        fc: fe.connections.load(Ordering::Relaxed) as u32,
        bc: bc as u32,
        sc: sc as u32,
        retries: out.retries,
        redispatched: out.redispatched,
        sq: 0,
        bq: backend_queue(&out.backend, fe),
    };
    tracing::info!(target: "access", "{}", format_tcplog(&entry));
}

fn backend_queue(backend: &Option<usize>, fe: &TcpFrontend) -> u32 {
    backend
        .and_then(|i| fe.backends().get(i).map(|b| b.queued() as u32))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_sni_is_one_label() {
        let w = HostMatch::parse("*.example.test");
        assert!(sni_matches(&w, "a.example.test"));
        assert!(sni_matches(&w, "A.EXAMPLE.test"));
        assert!(!sni_matches(&w, "a.b.example.test"));
        assert!(!sni_matches(&w, "example.test"));
        assert!(!sni_matches(&w, "aexample.test"));
        let e = HostMatch::parse("App.Example.Test");
        assert!(sni_matches(&e, "app.example.test"));
        assert!(!sni_matches(&e, "x.app.example.test"));
    }
}
