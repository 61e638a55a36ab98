//! Listening sockets of a frontend: bind (IP_FREEBIND, so a VIP can be bound before VRRP
//! adds it; on a reload the new balancer takes over the old one's listening sockets for the
//! same addresses, so no connection waiting in a backlog is lost), accept within `maxconn`, and close with a drain of the open connections.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use crate::http::frontend::{Frontend, FrontendError};
use crate::listen::tls::accept::TlsTerm;
use crate::listen::{conn, proxied};
use crate::tcp::{self, TcpFrontend};

const BACKLOG: i32 = 1024;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("frontend {frontend}: cannot listen on {addr}: {source}")]
    Bind {
        frontend: String,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Frontend(#[from] FrontendError),
    #[error("backend {backend}: tls: {source}")]
    ServerTls {
        backend: String,
        source: crate::upstream::tls::TlsSetupError,
    },
    #[error("the proxy must be started inside a tokio runtime")]
    NoRuntime,
    #[error(transparent)]
    Certificates(#[from] crate::listen::tls::TlsLoadError),
    #[error("frontend {frontend}: TLS settings: {source}")]
    TlsSettings {
        frontend: String,
        source: rustls::Error,
    },
}

/// A listening socket for `addr`. IPv6 sockets are IPv6-only so `0.0.0.0:80` and `[::]:80`
/// can both be listed.
pub(crate) fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    let freebind = if addr.is_ipv6() {
        socket.set_only_v6(true)?;
        socket.set_freebind_v6(true)
    } else {
        socket.set_freebind_v4(true)
    };
    if let Err(e) = freebind {
        // Binding still works for addresses already present.
        tracing::debug!(%addr, error = %e, "IP_FREEBIND not available");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Connection limits: the process's and the frontend's `maxconn`. A connection holds one
/// permit of each; at the limit the accept loop stops accepting (connections wait in the
/// kernel backlog), it never accepts and closes.
#[derive(Clone)]
pub(crate) struct Limits {
    pub(crate) global: Arc<Semaphore>,
    pub(crate) frontend: Arc<Semaphore>,
}

struct Running {
    drain: watch::Sender<Option<Duration>>,
    accepts: Vec<JoinHandle<()>>,
    addrs: Vec<SocketAddr>,
    /// By configured address, for a reload to take over.
    sockets: Vec<(SocketAddr, Arc<TcpListener>)>,
}

/// Listening sockets a reload hands from the old balancer to the new one, by configured
/// address; shared by the new balancer's frontends and emptied once the reload is done.
pub(crate) type Inherited = Arc<Mutex<HashMap<SocketAddr, Arc<TcpListener>>>>;

/// The listeners of one frontend, opened and closed as a whole.
pub(crate) struct ListenerSet {
    pub(crate) fe: Arc<Frontend>,
    /// TLS termination; `None` for a plain frontend.
    pub(crate) tls: Option<Arc<TlsTerm>>,
    /// tcp mode: connections go to tcp::serve instead of the HTTP server.
    tcp: Option<Arc<TcpFrontend>>,
    limits: Limits,
    running: Mutex<Option<Running>>,
    /// Open connections of this frontend, across open/close cycles.
    live: watch::Sender<usize>,
    inherited: Inherited,
}

#[derive(Debug)]
pub(crate) struct BindError {
    pub(crate) addr: SocketAddr,
    pub(crate) source: io::Error,
}

impl ListenerSet {
    pub(crate) fn new(
        fe: Arc<Frontend>,
        tls: Option<Arc<TlsTerm>>,
        tcp: Option<Arc<TcpFrontend>>,
        limits: Limits,
        inherited: Inherited,
    ) -> Arc<Self> {
        Arc::new(ListenerSet {
            fe,
            tls,
            tcp,
            limits,
            running: Mutex::new(None),
            live: watch::channel(0).0,
            inherited,
        })
    }

    /// The open listening sockets, by configured address.
    pub(crate) fn sockets(&self) -> Vec<(SocketAddr, Arc<TcpListener>)> {
        self.lock()
            .as_ref()
            .map(|r| r.sockets.clone())
            .unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn is_open(&self) -> bool {
        self.lock().is_some()
    }

    pub(crate) fn local_addrs(&self) -> Vec<SocketAddr> {
        self.lock()
            .as_ref()
            .map(|r| r.addrs.clone())
            .unwrap_or_default()
    }

    /// Binds every address (all or nothing) and starts accepting. Idempotent. Needs a tokio
    /// runtime.
    pub(crate) fn open(self: &Arc<Self>) -> Result<(), BindError> {
        let mut running = self.lock();
        if running.is_some() {
            return Ok(());
        }
        let mut listeners = Vec::with_capacity(self.fe.cfg.bind.len());
        for &addr in &self.fe.cfg.bind {
            let taken = self
                .inherited
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&addr);
            let l = match taken {
                Some(l) => l,
                None => bind(addr)
                    .and_then(TcpListener::from_std)
                    .map(Arc::new)
                    .map_err(|source| BindError { addr, source })?,
            };
            listeners.push((addr, l));
        }
        let (drain, _) = watch::channel(None);
        let mut addrs = Vec::with_capacity(listeners.len());
        let mut accepts = Vec::with_capacity(listeners.len());
        let sockets = listeners.clone();
        for (_, l) in listeners {
            let addr = l
                .local_addr()
                .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
            addrs.push(addr);
            tracing::info!(frontend = %self.fe.name, %addr, "listening");
            accepts.push(tokio::spawn(accept_loop(
                self.clone(),
                l,
                addr,
                drain.subscribe(),
            )));
        }
        *running = Some(Running {
            drain,
            accepts,
            addrs,
            sockets,
        });
        Ok(())
    }

    /// Closes the listening sockets (new connects are refused once this returns) and asks
    /// open connections to finish their in-flight requests within `drain`.
    pub(crate) async fn close(&self, drain: Duration) {
        let Some(running) = self.lock().take() else {
            return;
        };
        for a in &running.accepts {
            a.abort();
        }
        for a in running.accepts {
            let _ = a.await;
        }
        running.drain.send_replace(Some(drain));
        tracing::info!(frontend = %self.fe.name, "stopped listening");
    }

    /// Closes at once without waiting (the proxy is being dropped).
    pub(crate) fn abort(&self) {
        if let Some(running) = self.lock().take() {
            for a in &running.accepts {
                a.abort();
            }
            running.drain.send_replace(Some(Duration::ZERO));
        }
    }

    /// Waits until no connection of this frontend is open.
    pub(crate) async fn wait_idle(&self) {
        let mut rx = self.live.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}

/// Counts a connection in the process, the frontend and the set while it lives.
struct Open {
    set: Arc<ListenerSet>,
}

impl Open {
    fn new(set: &Arc<ListenerSet>) -> Self {
        set.fe.counters.connections.fetch_add(1, Ordering::Relaxed);
        let open = set.fe.connections.fetch_add(1, Ordering::Relaxed) + 1;
        set.fe.meters.session_started(open);
        set.live.send_modify(|n| *n += 1);
        Open { set: set.clone() }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.set
            .fe
            .counters
            .connections
            .fetch_sub(1, Ordering::Relaxed);
        self.set.fe.connections.fetch_sub(1, Ordering::Relaxed);
        self.set.live.send_modify(|n| *n = n.saturating_sub(1));
    }
}

async fn accept_loop(
    set: Arc<ListenerSet>,
    listener: Arc<TcpListener>,
    addr: SocketAddr,
    drain: watch::Receiver<Option<Duration>>,
) {
    loop {
        let Ok(global) = set.limits.global.clone().acquire_owned().await else {
            return;
        };
        let Ok(local) = set.limits.frontend.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of descriptors or memory: back off instead of spinning.
                tracing::warn!(frontend = %set.fe.name, %addr, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // The address the client reached: a listener bound to one address (only_v6 keeps a
        // `[::]` one from taking IPv4) accepts on that address alone, so only a wildcard one
        // asks the kernel (getsockname, one system call per connection).
        let local_addr = if addr.ip().is_unspecified() {
            stream.local_addr().unwrap_or(addr)
        } else {
            addr
        };
        let _ = stream.set_nodelay(true);
        let open = Open::new(&set);
        let fe = set.fe.clone();
        let drain = drain.clone();
        if let Some(tcp) = set.tcp.clone() {
            tokio::spawn(async move {
                tcp::serve(tcp, stream, peer, local_addr, drain).await;
                drop(open);
                drop((global, local));
            });
            continue;
        }
        let tls = set.tls.clone();
        if fe.cfg.accept_proxy {
            tokio::spawn(async move {
                if let Some((stream, src, dst)) =
                    proxied::read_header(&fe, stream, peer, local_addr).await
                {
                    serve_http(fe, tls, stream, src, dst, drain).await;
                }
                drop(open);
                drop((global, local));
            });
            continue;
        }
        tokio::spawn(async move {
            serve_http(fe, tls, stream, peer, local_addr, drain).await;
            drop(open);
            drop((global, local));
        });
    }
}

/// Serves an HTTP connection, after the TLS handshake on a TLS frontend. The handshake runs
/// in the connection's own task, holding its permits: a flood of handshakes is bounded by
/// maxconn and the handshake deadline.
async fn serve_http<S>(
    fe: Arc<Frontend>,
    tls: Option<Arc<TlsTerm>>,
    stream: S,
    peer: SocketAddr,
    local: SocketAddr,
    drain: watch::Receiver<Option<Duration>>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match tls {
        None => conn::serve(fe, stream, peer, local, None, conn::Alpn::None, drain).await,
        Some(tls) => {
            if let Some((stream, facts)) = tls.accept(&fe.name, stream, peer).await {
                let alpn = conn::Alpn::of(stream.get_ref().1.alpn_protocol());
                conn::serve(fe, stream, peer, local, Some(facts), alpn, drain).await;
            }
        }
    }
}
