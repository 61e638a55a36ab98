//! A WebSocket upgrade (RFC 6455 §4; lb.md §8, issue 11 §4): a request that asked
//! `Upgrade: websocket` and got `101 Switching Protocols` from its server turns the client
//! connection and that server connection into one byte tunnel.
//!
//! The request's service answers the 101 with an empty body and leaves the [`Tunnel`]'s run
//! with the connection (client_conn.rs); once hyper has written the 101 and handed the client
//! socket over, the connection task (listen/conn.rs) runs it. So the tunnel holds the
//! connection's `maxconn` permits, counts as an open connection, and is drained on a reload
//! like a request in flight (cut after the grace time: logged `CD`). It also holds the server slot (leastconn, server `maxconn`) and the
//! exchange, which is logged when the tunnel ends, with the bytes sent to the client.
//!
//! Each direction copies until its reader reaches end of stream, then shuts the other side's
//! writer down (half-close passed on); the tunnel ends when both did, when one side fails,
//! when nothing moved for the idle limit (backend `timeouts.tunnel`, else the smaller of the
//! frontend's `client` and the backend's `server`, as tcp mode), or when a check marks the
//! server DOWN and the backend has `on_marked_down: shutdown_sessions`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::http::client_conn::RequestGuard;
use crate::http::exchange::Exchange;
use crate::observe::accesslog::{TermCause, TermPhase};
use crate::upstream::backend::Slot;
use crate::upstream::io::ServerIo;

/// Read size of each direction.
const CHUNK: usize = 16 * 1024;

/// An upgraded exchange waiting for hyper to hand over the client socket.
pub(crate) struct Tunnel {
    pub(crate) client: OnUpgrade,
    pub(crate) server: ServerIo,
    /// Bytes the server sent after the 101 head (read with it).
    pub(crate) server_early: BytesMut,
    pub(crate) idle: Duration,
    /// Size of the 101 head, for the log's byte count.
    pub(crate) head: u64,
    /// The server's DOWN counter, when its backend has `shutdown_sessions`.
    pub(crate) marked_down: Option<watch::Receiver<u64>>,
    pub(crate) slot: Slot,
    pub(crate) exchange: Box<Exchange>,
    /// Keeps the client connection "in a request" (no keep-alive deadline) while it lasts.
    pub(crate) guard: RequestGuard,
}

/// How a tunnel ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Closed,
    ClientError,
    ServerError,
    Idle,
    MarkedDown,
}

impl Tunnel {
    /// Runs the tunnel to its end, then logs the exchange.
    pub(crate) async fn run(self) {
        let Tunnel {
            client,
            mut server,
            server_early,
            idle,
            head,
            mut marked_down,
            slot,
            mut exchange,
            guard,
        } = self;
        let to_client = AtomicU64::new(0);
        let end = match client.await {
            Ok(upgraded) => {
                let mut client = TokioIo::new(upgraded);
                let tunnel = async {
                    if !server_early.is_empty() {
                        if client.write_all(&server_early).await.is_err() {
                            return End::ClientError;
                        }
                        to_client.fetch_add(server_early.len() as u64, Ordering::Relaxed);
                    }
                    copy_both(&mut client, &mut server, idle, &to_client).await
                };
                tokio::pin!(tunnel);
                tokio::select! {
                    end = &mut tunnel => end,
                    () = down(&mut marked_down) => End::MarkedDown,
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "client connection not upgraded");
                End::ClientError
            }
        };
        let (cause, phase) = match end {
            End::Closed => (TermCause::Normal, TermPhase::Done),
            End::ClientError => (TermCause::ClientAbort, TermPhase::Data),
            End::ServerError => (TermCause::ServerAbort, TermPhase::Data),
            End::Idle => (TermCause::ClientTimeout, TermPhase::Data),
            End::MarkedDown => (TermCause::Proxy, TermPhase::Data),
        };
        exchange.entry.termination.cause = cause;
        exchange.entry.termination.phase = phase;
        drop(slot);
        exchange.finish(head + to_client.load(Ordering::Relaxed));
        drop(guard);
    }
}

async fn down(rx: &mut Option<watch::Receiver<u64>>) {
    match rx {
        Some(rx) => {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

/// Copies both ways until both directions ended, one side failed, or nothing moved for
/// `idle`.
async fn copy_both<C, S>(
    client: &mut C,
    server: &mut S,
    idle: Duration,
    to_client: &AtomicU64,
) -> End
where
    C: AsyncRead + AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (cr, cw) = tokio::io::split(client);
    let (sr, sw) = tokio::io::split(server);
    let start = Instant::now();
    // Milliseconds after `start` of the last byte moved.
    let last = AtomicU64::new(0);
    let to_server = AtomicU64::new(0);
    let up = pump(cr, sw, &to_server, &last, start);
    let down = pump(sr, cw, to_client, &last, start);
    tokio::pin!(up, down);
    let (mut up_done, mut down_done) = (false, false);
    let watch = idle_watch(&last, start, idle);
    tokio::pin!(watch);
    while !(up_done && down_done) {
        tokio::select! {
            r = &mut up, if !up_done => match r {
                Ok(()) => up_done = true,
                Err(Failed::Read) => return End::ClientError,
                Err(Failed::Write) => return End::ServerError,
            },
            r = &mut down, if !down_done => match r {
                Ok(()) => down_done = true,
                Err(Failed::Read) => return End::ServerError,
                Err(Failed::Write) => return End::ClientError,
            },
            () = &mut watch => return End::Idle,
        }
    }
    End::Closed
}

/// Resolves once nothing moved for `idle` (one timer wake per period on a busy tunnel).
async fn idle_watch(last: &AtomicU64, start: Instant, idle: Duration) {
    loop {
        let at = start + Duration::from_millis(last.load(Ordering::Relaxed)) + idle;
        if Instant::now() >= at {
            return;
        }
        tokio::time::sleep_until(at).await;
    }
}

enum Failed {
    Read,
    Write,
}

/// Copies `from` to `to` until end of stream (then shuts `to` down) or an error.
async fn pump<R, W>(
    mut from: R,
    mut to: W,
    count: &AtomicU64,
    last: &AtomicU64,
    start: Instant,
) -> Result<(), Failed>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = from.read(&mut buf).await.map_err(|_| Failed::Read)?;
        if n == 0 {
            let _ = to.shutdown().await;
            return Ok(());
        }
        to.write_all(&buf[..n]).await.map_err(|_| Failed::Write)?;
        to.flush().await.map_err(|_| Failed::Write)?;
        count.fetch_add(n as u64, Ordering::Relaxed);
        last.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}
