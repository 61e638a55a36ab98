//! The byte relay of every tunnel (lb.md §11, issue 11 §4): tcp mode, a WebSocket upgrade
//! and a CONNECT in http mode. Each direction copies until its reader reaches end of stream,
//! then shuts down the writer of the other side (half-close propagated); the relay ends when
//! both directions ended, when one side fails (a reset cuts both), or when nothing moved for
//! the inactivity limit (`timeouts.tunnel`).
//!
//! Between two plain TCP sockets ([`relay_tcp`]) a direction holds no buffer while its socket
//! is idle: the buffer is taken when the socket is readable and dropped once it has drained,
//! so ten thousand idle tunnels cost their sockets and tasks, not 2 × 64 KiB each. A read
//! that fills the whole buffer starts a bulk burst, moved with splice(2) through a pooled
//! pipe until the socket is drained (splice.rs). An upgraded HTTP/1 client connection on a
//! plain frontend gives its socket back for this (http/upgrade.rs); any other pair of streams
//! (TLS on either side, an h2c frontend's sniffing wrapper, an HTTP/2 stream) goes through
//! [`relay`], a buffered copy.
//!
//! It lives in upstream/, the lowest layer tcp/ and http/ both read.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::upstream::splice::{Pipe, SPLICE_CHUNK};

const CHUNK: usize = SPLICE_CHUNK;
/// Read size of the buffered copy ([`relay`]).
const COPY_CHUNK: usize = 16 * 1024;

/// How a relay ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RelayEnd {
    /// Both sides closed their write side.
    Closed,
    /// The client failed (reset) while the relay was open.
    ClientError,
    /// The server failed (reset) while the relay was open.
    ServerError,
    /// Nothing moved in either direction for the inactivity limit.
    Idle,
}

/// Bytes moved, per direction.
#[derive(Debug, Default)]
pub(crate) struct Moved {
    pub(crate) to_server: AtomicU64,
    pub(crate) to_client: AtomicU64,
}

/// When the last byte moved, for the idle watch: milliseconds after `start`.
struct Activity {
    start: Instant,
    last: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            start: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    fn moved(&self, count: &AtomicU64, n: usize) {
        count.fetch_add(n as u64, Ordering::Relaxed);
        self.last
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

/// Relays between two plain TCP sockets until the end, splicing bulk transfers.
pub(crate) async fn relay_tcp(
    client: &mut TcpStream,
    server: &mut TcpStream,
    idle: Duration,
    moved: &Moved,
) -> RelayEnd {
    let (cr, cw) = client.split();
    let (sr, sw) = server.split();
    let activity = Activity::new();
    let up = pump_tcp(cr, sw, &moved.to_server, &activity);
    let down = pump_tcp(sr, cw, &moved.to_client, &activity);
    both_ways(up, down, &activity, idle).await
}

/// Relays between any two streams until the end (a buffered copy each way).
pub(crate) async fn relay<C, S>(
    client: &mut C,
    server: &mut S,
    idle: Duration,
    moved: &Moved,
) -> RelayEnd
where
    C: AsyncRead + AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (cr, cw) = tokio::io::split(client);
    let (sr, sw) = tokio::io::split(server);
    let activity = Activity::new();
    let up = pump(cr, sw, &moved.to_server, &activity);
    let down = pump(sr, cw, &moved.to_client, &activity);
    both_ways(up, down, &activity, idle).await
}

/// Runs both directions until both ended, one failed, or nothing moved for `idle`.
async fn both_ways<U, D>(up: U, down: D, activity: &Activity, idle: Duration) -> RelayEnd
where
    U: std::future::Future<Output = Result<(), Failed>>,
    D: std::future::Future<Output = Result<(), Failed>>,
{
    tokio::pin!(up, down);
    let (mut up_done, mut down_done) = (false, false);
    let watch = idle_watch(activity, idle);
    tokio::pin!(watch);
    while !(up_done && down_done) {
        tokio::select! {
            r = &mut up, if !up_done => match r {
                Ok(()) => up_done = true,
                Err(Failed::Read) => return RelayEnd::ClientError,
                Err(Failed::Write) => return RelayEnd::ServerError,
            },
            r = &mut down, if !down_done => match r {
                Ok(()) => down_done = true,
                Err(Failed::Read) => return RelayEnd::ServerError,
                Err(Failed::Write) => return RelayEnd::ClientError,
            },
            () = &mut watch => return RelayEnd::Idle,
        }
    }
    RelayEnd::Closed
}

/// Resolves once nothing moved for `idle`. Sleeps a whole period at a time and re-checks
/// the time of the last move, so a busy relay costs one timer wake per period.
async fn idle_watch(activity: &Activity, idle: Duration) {
    loop {
        let last = Duration::from_millis(activity.last.load(Ordering::Relaxed));
        let at = activity.start + last + idle;
        if Instant::now() >= at {
            return;
        }
        tokio::time::sleep_until(at).await;
    }
}

/// Which end of a direction failed.
enum Failed {
    Read,
    Write,
}

/// Copies `from` to `to` until end of stream (then shuts `to` down) or an error.
async fn pump<R, W>(
    mut from: R,
    mut to: W,
    count: &AtomicU64,
    activity: &Activity,
) -> Result<(), Failed>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; COPY_CHUNK];
    loop {
        let n = from.read(&mut buf).await.map_err(|_| Failed::Read)?;
        if n == 0 {
            // Half-close: the peer sees our end of stream and may still answer.
            let _ = to.shutdown().await;
            return Ok(());
        }
        to.write_all(&buf[..n]).await.map_err(|_| Failed::Write)?;
        // TLS may hold records back until flushed.
        to.flush().await.map_err(|_| Failed::Write)?;
        activity.moved(count, n);
    }
}

/// Copies `from` to `to` until end of stream (then shuts `to` down) or an error; a read
/// that fills the buffer hands the rest of the burst to splice(2).
async fn pump_tcp(
    from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
    count: &AtomicU64,
    activity: &Activity,
) -> Result<(), Failed> {
    loop {
        from.readable().await.map_err(|_| Failed::Read)?;
        let mut buf = Vec::with_capacity(CHUNK);
        loop {
            buf.clear();
            match from.try_read_buf(&mut buf) {
                Ok(0) => {
                    let _ = to.shutdown().await;
                    return Ok(());
                }
                Ok(n) => {
                    to.write_all(&buf[..n]).await.map_err(|_| Failed::Write)?;
                    activity.moved(count, n);
                    if n == CHUNK {
                        // A bulk transfer: the rest of the burst goes through a pipe.
                        if let Burst::Ended = splice_burst(&from, &to, count, activity).await? {
                            let _ = to.shutdown().await;
                            return Ok(());
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return Err(Failed::Read),
            }
        }
    }
}

/// How a spliced burst ended.
enum Burst {
    /// The reader has nothing more for now (or no pipe was to be had): back to copying.
    Drained,
    /// End of stream.
    Ended,
}

/// Splices `from` to `to` through a pooled pipe until `from` has nothing more to give.
async fn splice_burst(
    from: &ReadHalf<'_>,
    to: &WriteHalf<'_>,
    count: &AtomicU64,
    activity: &Activity,
) -> Result<Burst, Failed> {
    let Some(pipe) = Pipe::take() else {
        return Ok(Burst::Drained);
    };
    let (reader, writer): (&TcpStream, &TcpStream) = (from.as_ref(), to.as_ref());
    let (src, dst) = (reader.as_raw_fd(), writer.as_raw_fd());
    loop {
        // The pipe is empty here, so a refusal to fill it means the socket is drained.
        let n = match reader.try_io(Interest::READABLE, || pipe.fill(src)) {
            Ok(0) => {
                pipe.give_back();
                return Ok(Burst::Ended);
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                pipe.give_back();
                return Ok(Burst::Drained);
            }
            Err(_) => return Err(Failed::Read),
        };
        let mut left = n;
        // On a write failure the pipe may still hold bytes: it is closed, not given back.
        while left > 0 {
            writer.writable().await.map_err(|_| Failed::Write)?;
            match writer.try_io(Interest::WRITABLE, || pipe.drain(dst, left)) {
                Ok(0) => return Err(Failed::Write),
                Ok(m) => left -= m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return Err(Failed::Write),
            }
        }
        activity.moved(count, n);
    }
}
