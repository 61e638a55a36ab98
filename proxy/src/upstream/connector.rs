//! Connections to one server: the TCP connect with the `connect` timeout and a pool of idle
//! HTTP/1.1 connections.
//!
//! Knowing whether a request goes out on a reused pooled connection decides whether a
//! request that got no response at all may be sent again (RFC 9112 §9.3.1: a client may
//! retry an idempotent request that failed on a reused connection, the classic race where
//! the server closed an idle connection as we picked it; a fresh connection that dies
//! without an answer is a real failure, and replaying it could take a second server down).
//!
//! The pool is a stack (the most recently used connection goes out first, so the others age
//! out) of plain sockets ([`RawConn`]). Requests without a body are exchanged on them
//! directly (h1.rs); a request with a body lends the socket to hyper's client for one
//! exchange ([`Upstream::lend`]), which gives it back when that exchange ended cleanly. A
//! connection goes back to the pool only after a complete keep-alive response; any other
//! end closes it. Idle connections older than `server_idle` are closed by a reaper task that
//! runs only while the pool holds some (lb.md §7), and never handed out. [`Upstream::reset`]
//! (server DOWN, or a reused connection found dead) closes the idle ones and keeps
//! connections in use from coming back.
//!
//! `send_proxy` (lb.md §11): a new connection starts with a PROXY header naming the client
//! it was opened for (before the TLS handshake when the backend has `tls`), so it belongs
//! to that client: it goes back to the pool marked with the client's source and destination
//! address and is handed out again only to a request carrying the same pair (the same
//! client connection, or the same connection of a balancer in front). A server never sees
//! a request under another client's header. HAProxy makes such connections private to
//! their session in the same way.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::config::{BackendTimeouts, ProxyVersion};
use crate::proxy_header;
use crate::upstream::body::RequestBody;
use crate::upstream::h1::{ClientAddrs, RawConn};
use crate::upstream::io::ServerIo;
use crate::upstream::tls::ServerTlsClient;

/// A pooled connection lent to hyper's client for one request with a body.
pub(crate) struct HyperConn {
    pub(crate) tx: http1::SendRequest<RequestBody>,
    pub(crate) reused: bool,
    /// Set when the exchange ended cleanly on a keep-alive response: the connection task
    /// then puts the socket back into the pool (once `tx` is dropped).
    give_back: Arc<AtomicBool>,
}

impl HyperConn {
    /// The response ended cleanly and allows another request on this connection.
    pub(crate) fn release(self) {
        self.give_back.store(true, Ordering::Release);
    }
}

struct IdleRaw {
    conn: RawConn,
    since: Instant,
}

#[derive(Default)]
struct PoolState {
    /// Oldest first; the last one is handed out first.
    idle: Vec<IdleRaw>,
    generation: u64,
    reaper: bool,
}

struct Pool {
    idle_timeout: Duration,
    state: Mutex<PoolState>,
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn put(self: &Arc<Self>, conn: RawConn, since: Instant) {
        let mut st = self.lock();
        if conn.generation != st.generation {
            return;
        }
        st.idle.push(IdleRaw { conn, since });
        if !st.reaper {
            st.reaper = true;
            drop(st);
            tokio::spawn(reap(Arc::downgrade(self)));
        }
    }
}

/// Why no connection could be made.
#[derive(Debug)]
pub(crate) enum ConnectError {
    /// The TCP connect, or the TLS handshake after it, did not end within `connect`.
    Timeout,
    Io(io::Error),
    /// The TLS handshake failed: a protocol error or a certificate that does not verify.
    Tls(io::Error),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Timeout => f.write_str("connect timeout"),
            ConnectError::Io(e) | ConnectError::Tls(e) => write!(f, "{e}"),
        }
    }
}

/// The connections of one server.
pub(crate) struct Upstream {
    addr: SocketAddr,
    connect_timeout: Duration,
    /// Backend `tls`: every new connection starts with a TLS handshake.
    tls: Option<ServerTlsClient>,
    /// Backend `send_proxy`: every new connection starts with a PROXY header.
    send_proxy: Option<ProxyVersion>,
    pool: Arc<Pool>,
}

impl Upstream {
    pub(crate) fn new(
        addr: SocketAddr,
        timeouts: &BackendTimeouts,
        tls: Option<ServerTlsClient>,
        send_proxy: Option<ProxyVersion>,
    ) -> Self {
        Upstream {
            addr,
            connect_timeout: timeouts.connect,
            tls,
            send_proxy,
            pool: Arc::new(Pool {
                idle_timeout: timeouts.server_idle,
                state: Mutex::default(),
            }),
        }
    }

    /// An idle pooled connection still open, else a new one. `client`: the request's client
    /// (source, destination), which a `send_proxy` connection must have been opened for;
    /// `now`: the time idle connections are judged at (the caller's clock read).
    pub(crate) async fn checkout(
        &self,
        client: ClientAddrs,
        now: Instant,
    ) -> Result<RawConn, ConnectError> {
        if self.send_proxy.is_some() {
            return match self.take_owned(client, now) {
                Ok(conn) => Ok(conn),
                Err(generation) => self.open(generation, Some(client)).await,
            };
        }
        let generation = {
            let mut st = self.pool.lock();
            while let Some(mut c) = st.idle.pop() {
                if now.saturating_duration_since(c.since) >= self.pool.idle_timeout {
                    // The newest is expired: all are.
                    st.idle.clear();
                    break;
                }
                if c.conn.still_open() {
                    return Ok(c.conn);
                }
            }
            st.generation
        };
        self.open(generation, None).await
    }

    /// `send_proxy`: the newest idle connection opened for `client` and still open; else the
    /// pool generation for a new one.
    fn take_owned(&self, client: ClientAddrs, now: Instant) -> Result<RawConn, u64> {
        let mut st = self.pool.lock();
        while let Some(i) = st.idle.iter().rposition(|c| c.conn.owner() == Some(client)) {
            let mut c = st.idle.remove(i);
            if now.saturating_duration_since(c.since) < self.pool.idle_timeout
                && c.conn.still_open()
            {
                return Ok(c.conn);
            }
        }
        Err(st.generation)
    }

    /// A new connection, its future on the heap: the connect and the TLS handshake need about
    /// 1.6 KB of state, which would otherwise be part of every request's future (`checkout`'s,
    /// and with it `forward`'s and `http::request::handle`'s: 3,920 -> 2,648 bytes), held by
    /// each request in flight and copied into the box of each HTTP/2 stream, although a
    /// request served on a pooled connection needs none of it.
    fn open(
        &self,
        generation: u64,
        owner: Option<ClientAddrs>,
    ) -> Pin<Box<dyn Future<Output = Result<RawConn, ConnectError>> + Send + '_>> {
        Box::pin(async move {
            match tokio::time::timeout(self.connect_timeout, self.connect(owner)).await {
                Ok(Ok(io)) => Ok(RawConn::new(io, generation, owner)),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(ConnectError::Timeout),
            }
        })
    }

    /// A new connection: TCP, the PROXY header for `owner` (`send_proxy`), then the TLS
    /// handshake when the backend has `tls` (all within the one `connect` timeout of the
    /// caller).
    async fn connect(&self, owner: Option<ClientAddrs>) -> Result<ServerIo, ConnectError> {
        let mut stream = TcpStream::connect(self.addr)
            .await
            .map_err(ConnectError::Io)?;
        let _ = stream.set_nodelay(true);
        if let (Some(version), Some((src, dst))) = (self.send_proxy, owner) {
            let head = match version {
                ProxyVersion::V1 => proxy_header::encode_v1(src, dst),
                ProxyVersion::V2 => proxy_header::encode_v2(src, dst),
            };
            // A fresh socket's send buffer takes the ~100 bytes at once.
            tokio::io::AsyncWriteExt::write_all(&mut stream, &head)
                .await
                .map_err(ConnectError::Io)?;
        }
        match &self.tls {
            None => Ok(ServerIo::Plain(stream)),
            Some(tls) => match tls.handshake(stream).await {
                Ok(s) => Ok(ServerIo::Tls(Box::new(s))),
                Err(e) => Err(ConnectError::Tls(e)),
            },
        }
    }

    /// The TLS client of this server, when its backend has `tls` (health checks use it).
    pub(crate) fn tls(&self) -> Option<&ServerTlsClient> {
        self.tls.as_ref()
    }

    /// Takes back a connection after a complete keep-alive response, idle since `now`.
    pub(crate) fn put(&self, conn: RawConn, now: Instant) {
        self.pool.put(conn, now);
    }

    /// Hands a connection to hyper's client for one exchange; the socket comes back to the
    /// pool when [`HyperConn::release`] was called and hyper finished cleanly with it.
    pub(crate) async fn lend(&self, conn: RawConn) -> Result<HyperConn, ConnectError> {
        let owner = conn.owner();
        let (io, reused, generation) = conn.into_parts();
        let (tx, connection) = http1::Builder::new()
            .handshake(TokioIo::new(io))
            .await
            .map_err(|e| ConnectError::Io(io::Error::other(e)))?;
        let give_back = Arc::new(AtomicBool::new(false));
        let flag = give_back.clone();
        let pool = self.pool.clone();
        let addr = self.addr;
        tokio::spawn(async move {
            match connection.without_shutdown().await {
                Ok(parts) if parts.read_buf.is_empty() && flag.load(Ordering::Acquire) => {
                    let mut conn = RawConn::new(parts.io.into_inner(), generation, owner);
                    conn.reused = true;
                    pool.put(conn, Instant::now());
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(server = %addr, error = %e, "server connection error"),
            }
        });
        Ok(HyperConn {
            tx,
            reused,
            give_back,
        })
    }

    /// Closes the idle connections; connections in use are closed when their exchange ends.
    pub(crate) fn reset(&self) {
        let mut st = self.pool.lock();
        st.generation += 1;
        st.idle.clear();
    }
}

/// Closes idle connections once they are `idle_timeout` old; ends when the pool is empty.
async fn reap(pool: Weak<Pool>) {
    loop {
        let next = {
            let Some(pool) = pool.upgrade() else { return };
            let mut st = pool.lock();
            let now = Instant::now();
            let timeout = pool.idle_timeout;
            let expired = st
                .idle
                .iter()
                .take_while(|c| now.duration_since(c.since) >= timeout)
                .count();
            st.idle.drain(..expired);
            match st.idle.first() {
                Some(c) => c.since + timeout,
                None => {
                    st.reaper = false;
                    return;
                }
            }
        };
        tokio::time::sleep_until(next.into()).await;
    }
}
