//! What a client connection shares with its requests: the request cycle counters the socket
//! wrapper (listen/conn.rs) reads to pick its timeout, the guard a request holds while it is in
//! flight, and the "close without answering" outcome of a service.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderValue;
use hyper::upgrade::Upgraded;
use tokio::net::TcpStream;

use crate::observe::accesslog::TlsFacts;

/// State shared between the socket wrapper and the requests of one connection.
pub(crate) struct ConnShared {
    pub(crate) accepted: Instant,
    pub(crate) started: AtomicU64,
    pub(crate) finished: AtomicU64,
    /// Microseconds after `accepted` when the current request's first byte arrived.
    pub(crate) first_byte: AtomicU64,
    /// Reads that brought the current request's head: 1 when it came whole in the read of
    /// its first byte, 2 for more; 0 once a request took it (see [`ConnShared::head_read_at`]).
    pub(crate) head_reads: AtomicU8,
    /// The `http_request` timeout fired and the 408 was sent.
    pub(crate) timed_out: AtomicBool,
    /// The client address as `forwarded_for` appends it.
    pub(crate) client_ip: HeaderValue,
    /// TLS facts for the access log; `None` on a plain connection.
    pub(crate) tls: Option<Arc<TlsFacts>>,
    /// An upgraded exchange's tunnel (upgrade.rs), run by the connection task once hyper
    /// has handed the socket over.
    tunnel: Mutex<Option<PendingTunnel>>,
    /// See [`TakeSocket`]; set by the connection task.
    take_socket: Option<TakeSocket>,
}

/// The run of an upgraded exchange's tunnel.
pub(crate) type PendingTunnel = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Takes the client's TCP socket (and the bytes hyper read past the head) out of an upgraded
/// connection when it is a plain one, so that a tunnel relays socket to socket (splice(2));
/// `Err` gives the connection back as it was (TLS, a PROXY header's prefix, an HTTP/2
/// sniffing wrapper). Only the connection task knows the socket's type, hence a function
/// it hands down.
pub(crate) type TakeSocket = fn(Upgraded) -> Result<(TcpStream, Bytes), Upgraded>;

impl ConnShared {
    pub(crate) fn new(client_ip: HeaderValue, tls: Option<Arc<TlsFacts>>) -> Self {
        ConnShared {
            client_ip,
            tls,
            accepted: Instant::now(),
            started: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            first_byte: AtomicU64::new(0),
            head_reads: AtomicU8::new(0),
            timed_out: AtomicBool::new(false),
            tunnel: Mutex::new(None),
            take_socket: None,
        }
    }

    pub(crate) fn with_take_socket(mut self, take: TakeSocket) -> Self {
        self.take_socket = Some(take);
        self
    }

    pub(crate) fn take_socket(&self) -> Option<TakeSocket> {
        self.take_socket
    }

    pub(crate) fn set_tunnel(&self, run: PendingTunnel) {
        *self.tunnel.lock().unwrap_or_else(|e| e.into_inner()) = Some(run);
    }

    pub(crate) fn take_tunnel(&self) -> Option<PendingTunnel> {
        self.tunnel.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// When the current request's first byte arrived, given the time `now`.
    pub(crate) fn request_start(&self, now: Instant) -> Instant {
        self.first_byte_at().min(now)
    }

    fn first_byte_at(&self) -> Instant {
        let us = self.first_byte.load(Ordering::Acquire);
        self.accepted + Duration::from_micros(us)
    }

    /// When the head of the request being opened arrived, if it came whole in one read (the
    /// usual case): hyper parsed it and called the service in the same wake-up, so that read's
    /// time stands for the request's arrival without another clock read. `None` for a head
    /// read in pieces, or one that came with an earlier request's (pipelined), whose read
    /// was taken by that request.
    pub(crate) fn head_read_at(&self) -> Option<Instant> {
        (self.head_reads.swap(0, Ordering::AcqRel) == 1).then(|| self.first_byte_at())
    }
}

/// Marks a request as in progress for [`ClientIo`] until dropped (end of its exchange).
pub(crate) struct RequestGuard(Arc<ConnShared>);

impl RequestGuard {
    pub(crate) fn new(shared: &Arc<ConnShared>) -> Self {
        shared.started.fetch_add(1, Ordering::AcqRel);
        RequestGuard(shared.clone())
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.finished.fetch_add(1, Ordering::AcqRel);
    }
}

/// The answer a service gives when an `error_pages` file is empty: close without a word.
#[derive(Debug)]
pub(crate) struct CloseSilently;

impl std::fmt::Display for CloseSilently {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("closed without answering (empty error page)")
    }
}

impl std::error::Error for CloseSilently {}
