//! Copying bytes both ways between a client and a server (lb.md §11): each direction runs
//! until its reader reaches end of stream, then shuts down the writer of the other side
//! (half-close propagated); the tunnel ends when both directions ended, when one side fails
//! (a reset cuts both), or when nothing moved for the inactivity limit.
//!
//! A direction holds no buffer while its socket is idle: the buffer is taken when the socket
//! is readable and dropped once it has drained, so ten thousand idle tunnels cost their
//! sockets and tasks, not 2 × 64 KiB each. A read that fills the whole buffer starts a bulk
//! burst, moved with splice(2) through a pooled pipe until the socket is drained
//! (splice.rs).

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use std::os::fd::AsRawFd;

use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::splice::{Pipe, SPLICE_CHUNK};

const CHUNK: usize = SPLICE_CHUNK;

/// How a tunnel ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TunnelEnd {
    /// Both sides closed their write side.
    Closed,
    /// The client failed (reset) while the tunnel was open.
    ClientError,
    /// The server failed (reset) while the tunnel was open.
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

/// Runs the tunnel until it ends. `idle` limits inactivity of the tunnel as a whole.
pub(crate) async fn run(
    client: &mut TcpStream,
    server: &mut TcpStream,
    idle: Duration,
    moved: &Moved,
) -> TunnelEnd {
    let (cr, cw) = client.split();
    let (sr, sw) = server.split();
    // Milliseconds since `start` of the last byte moved; read by the idle watch.
    let start = Instant::now();
    let last = AtomicU64::new(0);
    let up = pump(cr, sw, &moved.to_server, &last, start);
    let down = pump(sr, cw, &moved.to_client, &last, start);
    tokio::pin!(up, down);
    let mut up_done = false;
    let mut down_done = false;
    let watch = idle_watch(&last, start, idle);
    tokio::pin!(watch);
    loop {
        tokio::select! {
            r = &mut up, if !up_done => match r {
                Ok(()) => up_done = true,
                Err(Failed::Read) => return TunnelEnd::ClientError,
                Err(Failed::Write) => return TunnelEnd::ServerError,
            },
            r = &mut down, if !down_done => match r {
                Ok(()) => down_done = true,
                Err(Failed::Read) => return TunnelEnd::ServerError,
                Err(Failed::Write) => return TunnelEnd::ClientError,
            },
            () = &mut watch => return TunnelEnd::Idle,
        }
        if up_done && down_done {
            return TunnelEnd::Closed;
        }
    }
}

/// Resolves once nothing moved for `idle`. Sleeps a whole period at a time and re-checks
/// the time of the last move, so a busy tunnel costs one timer wake per period.
async fn idle_watch(last: &AtomicU64, start: Instant, idle: Duration) {
    loop {
        let at = start + Duration::from_millis(last.load(Ordering::Relaxed)) + idle;
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
async fn pump(
    from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
    count: &AtomicU64,
    last: &AtomicU64,
    start: Instant,
) -> Result<(), Failed> {
    loop {
        from.readable().await.map_err(|_| Failed::Read)?;
        let mut buf = Vec::with_capacity(CHUNK);
        loop {
            buf.clear();
            match from.try_read_buf(&mut buf) {
                Ok(0) => {
                    // Half-close: the peer sees our end of stream and may still answer.
                    let _ = to.shutdown().await;
                    return Ok(());
                }
                Ok(n) => {
                    to.write_all(&buf[..n]).await.map_err(|_| Failed::Write)?;
                    count.fetch_add(n as u64, Ordering::Relaxed);
                    last.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
                    if n == CHUNK {
                        // A bulk transfer: the rest of the burst goes through a pipe.
                        if let Burst::Ended = splice_burst(&from, &to, count, last, start).await? {
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
    last: &AtomicU64,
    start: Instant,
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
        count.fetch_add(n as u64, Ordering::Relaxed);
        last.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}
