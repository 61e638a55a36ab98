//! An upgraded exchange (lb.md §8, issue 11 §4): a WebSocket request (RFC 6455 §4) that got
//! `101 Switching Protocols`, or a CONNECT (RFC 9110 §9.3.6) that got a 2xx, turns the
//! client connection (an HTTP/2 CONNECT: its stream) and that server connection into one
//! byte tunnel.
//!
//! The request's service answers with an empty body and leaves the [`Tunnel`]'s run with the
//! connection (client_conn.rs); once hyper has written the answer and handed the client
//! socket over, the connection task (listen/conn.rs) runs it. So the tunnel holds the
//! connection's `maxconn` permits, counts as an open connection, and is drained on a reload
//! like a request in flight (cut after the grace time: logged `CD`). An HTTP/2 CONNECT's
//! tunnel runs on its own task beside the connection, whose task carries the stream's frames
//! (and ends it when the connection ends). The tunnel also holds the server slot (leastconn,
//! server `maxconn`) and the exchange, which is logged when the tunnel ends, with the bytes
//! sent to the client.
//!
//! The bytes move through the shared relay (upstream/relay.rs): half-close passed on; the
//! tunnel ends when both directions did, when one side fails, when nothing moved for the idle
//! limit (backend `timeouts.tunnel`, else the smaller of the frontend's `client` and the
//! backend's `server`, as tcp mode), or when a check marks the server DOWN and the backend
//! has `on_marked_down: shutdown_sessions`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use crate::http::client_conn::{RequestGuard, TakeSocket};
use crate::http::exchange::Exchange;
use crate::observe::accesslog::{TermCause, TermPhase};
use crate::upstream::backend::Slot;
use crate::upstream::io::ServerIo;
use crate::upstream::relay::{self, Moved, RelayEnd};

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
    /// Gets the client's TCP socket back from hyper when it is a plain one (client_conn.rs).
    pub(crate) take_socket: Option<TakeSocket>,
}

/// How a tunnel ended: the relay's end, or cut because its server went DOWN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Relay(RelayEnd),
    MarkedDown,
}

impl Tunnel {
    /// Runs the tunnel to its end, then logs the exchange.
    pub(crate) async fn run(self) {
        let Tunnel {
            client,
            server,
            server_early,
            take_socket,
            idle,
            head,
            mut marked_down,
            slot,
            mut exchange,
            guard,
        } = self;
        let moved = Moved::default();
        let end = match client.await {
            Ok(upgraded) => {
                let tunnel =
                    relay_upgraded(upgraded, server, server_early, take_socket, idle, &moved);
                tokio::pin!(tunnel);
                tokio::select! {
                    end = &mut tunnel => End::Relay(end),
                    () = down(&mut marked_down) => End::MarkedDown,
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "client connection not upgraded");
                End::Relay(RelayEnd::ClientError)
            }
        };
        let (cause, phase) = match end {
            End::Relay(RelayEnd::Closed) => (TermCause::Normal, TermPhase::Done),
            End::Relay(RelayEnd::ClientError) => (TermCause::ClientAbort, TermPhase::Data),
            End::Relay(RelayEnd::ServerError) => (TermCause::ServerAbort, TermPhase::Data),
            End::Relay(RelayEnd::Idle) => (TermCause::ClientTimeout, TermPhase::Data),
            End::MarkedDown => (TermCause::Proxy, TermPhase::Data),
        };
        exchange.entry.termination.cause = cause;
        exchange.entry.termination.phase = phase;
        drop(slot);
        exchange.finish(head + moved.to_client.load(Ordering::Relaxed));
        drop(guard);
    }
}

/// Sends each side what the other sent past its head, then relays: between the two TCP
/// sockets themselves when both are plain (splice(2) for bulk transfers), else through
/// hyper's upgraded stream.
async fn relay_upgraded(
    upgraded: Upgraded,
    mut server: ServerIo,
    server_early: BytesMut,
    take_socket: Option<TakeSocket>,
    idle: Duration,
    moved: &Moved,
) -> RelayEnd {
    let plain = match (&server, take_socket) {
        (ServerIo::Plain(_), Some(take)) => take(upgraded),
        _ => Err(upgraded),
    };
    match (plain, &mut server) {
        (Ok((mut client, client_early)), ServerIo::Plain(server)) => {
            if let Err(end) = send_early(&mut client, &server_early, &moved.to_client).await {
                return end;
            }
            if send_early(server, &client_early, &moved.to_server)
                .await
                .is_err()
            {
                return RelayEnd::ServerError;
            }
            relay::relay_tcp(&mut client, server, idle, moved).await
        }
        (Ok(_), _) => RelayEnd::ClientError,
        (Err(upgraded), server) => {
            let mut client = TokioIo::new(upgraded);
            if let Err(end) = send_early(&mut client, &server_early, &moved.to_client).await {
                return end;
            }
            relay::relay(&mut client, server, idle, moved).await
        }
    }
}

/// Writes bytes read ahead of the tunnel (with a head) to the other side.
async fn send_early<W: AsyncWrite + Unpin>(
    to: &mut W,
    early: &[u8],
    count: &AtomicU64,
) -> Result<(), RelayEnd> {
    if early.is_empty() {
        return Ok(());
    }
    to.write_all(early)
        .await
        .map_err(|_| RelayEnd::ClientError)?;
    count.fetch_add(early.len() as u64, Ordering::Relaxed);
    Ok(())
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
