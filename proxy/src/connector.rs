//! Connections to one server: a pool of idle HTTP/1 connections (hyper's low-level client,
//! one task per connection) and the TCP connect with the `connect` timeout.
//!
//! Knowing whether a request goes out on a reused pooled connection decides whether a
//! request that got no response at all may be sent again (RFC 9112 §9.3.1: a client may
//! retry an idempotent request that failed on a reused connection, the classic race where
//! the server closed an idle connection as we picked it; a fresh connection that dies
//! without an answer is a real failure, and replaying it could take a second server down).
//!
//! The pool is a stack (the most recently used connection goes out first, so the others age
//! out). A connection goes back when its response body ended cleanly; one whose exchange
//! ended otherwise is dropped, and hyper closes it. Idle connections older than
//! `server_idle` are closed by a reaper task that runs only while the pool holds some
//! (lb.md §7), and never handed out. [`Upstream::reset`] (server DOWN, or a reused
//! connection found dead) closes the idle ones and keeps connections in use from coming back.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::config::BackendTimeouts;
use crate::forward::RequestBody;

pub(crate) type Sender = http1::SendRequest<RequestBody>;

/// A connection to a server, out of the pool for one exchange.
pub(crate) struct PooledConn {
    pub(crate) tx: Sender,
    /// It served an earlier exchange (it came from the pool).
    pub(crate) reused: bool,
    generation: u64,
}

struct Idle {
    tx: Sender,
    since: Instant,
    generation: u64,
}

#[derive(Default)]
struct PoolState {
    /// Oldest first; the last one is handed out first.
    idle: Vec<Idle>,
    generation: u64,
    reaper: bool,
}

/// Why no connection could be made.
#[derive(Debug)]
pub(crate) enum ConnectError {
    Timeout,
    Io(io::Error),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Timeout => f.write_str("connect timeout"),
            ConnectError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// The connections of one server.
pub(crate) struct Upstream {
    addr: SocketAddr,
    connect_timeout: Duration,
    idle_timeout: Duration,
    state: Arc<Mutex<PoolState>>,
}

impl Upstream {
    pub(crate) fn new(addr: SocketAddr, timeouts: &BackendTimeouts) -> Self {
        Upstream {
            addr,
            connect_timeout: timeouts.connect,
            idle_timeout: timeouts.server_idle,
            state: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        lock(&self.state)
    }

    /// An idle pooled connection ready for a request, else a new one.
    pub(crate) async fn checkout(&self) -> Result<PooledConn, ConnectError> {
        loop {
            let idle = {
                let mut st = self.lock();
                match st.idle.pop() {
                    // The newest is expired: all are.
                    Some(c) if c.since.elapsed() >= self.idle_timeout => {
                        st.idle.clear();
                        None
                    }
                    other => other,
                }
            };
            let Some(mut c) = idle else { break };
            if c.tx.is_closed() {
                continue;
            }
            // A connection whose previous response just ended becomes ready as soon as its
            // task has run; one the server closed fails here.
            if c.tx.ready().await.is_ok() {
                return Ok(PooledConn {
                    tx: c.tx,
                    reused: true,
                    generation: c.generation,
                });
            }
        }
        self.connect().await
    }

    async fn connect(&self) -> Result<PooledConn, ConnectError> {
        let generation = self.lock().generation;
        let stream =
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(self.addr)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return Err(ConnectError::Io(e)),
                Err(_) => return Err(ConnectError::Timeout),
            };
        let _ = stream.set_nodelay(true);
        let (tx, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ConnectError::Io(io::Error::other(e)))?;
        let addr = self.addr;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(server = %addr, error = %e, "server connection error");
            }
        });
        Ok(PooledConn {
            tx,
            reused: false,
            generation,
        })
    }

    /// Takes back a connection whose exchange ended cleanly.
    pub(crate) fn put(&self, conn: PooledConn) {
        if conn.tx.is_closed() {
            return;
        }
        let mut st = self.lock();
        if conn.generation != st.generation {
            return;
        }
        st.idle.push(Idle {
            tx: conn.tx,
            since: Instant::now(),
            generation: conn.generation,
        });
        if !st.reaper {
            st.reaper = true;
            drop(st);
            tokio::spawn(reap(Arc::downgrade(&self.state), self.idle_timeout));
        }
    }

    /// Closes the idle connections; connections in use are closed when their exchange ends.
    pub(crate) fn reset(&self) {
        let mut st = self.lock();
        st.generation += 1;
        st.idle.clear();
    }
}

fn lock(state: &Mutex<PoolState>) -> MutexGuard<'_, PoolState> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Closes idle connections once they are `timeout` old; ends when the pool is empty.
async fn reap(state: Weak<Mutex<PoolState>>, timeout: Duration) {
    loop {
        let next = {
            let Some(state) = state.upgrade() else { return };
            let mut st = lock(&state);
            let now = Instant::now();
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
