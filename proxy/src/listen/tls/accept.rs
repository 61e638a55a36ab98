//! The TLS handshake of an accepted connection, under a deadline. A failed handshake (garbage
//! instead of a ClientHello, no shared version or cipher, a stall) closes the connection and
//! is logged with its reason and counted; nothing else is affected. The handshake only reads
//! the certificates already loaded (see resolver.rs).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::held::Held;
use crate::observe::accesslog::TlsFacts;

/// The longest a handshake may take (also bounded by the frontend's `timeouts.client`).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// TLS termination of one frontend.
pub(crate) struct TlsTerm {
    acceptor: TlsAcceptor,
    deadline: Duration,
    /// Handshakes that did not complete, for the stats.
    pub(crate) failures: AtomicU64,
}

impl TlsTerm {
    pub(crate) fn new(config: Arc<ServerConfig>, client_timeout: Duration) -> Self {
        TlsTerm {
            acceptor: TlsAcceptor::from(config),
            deadline: HANDSHAKE_TIMEOUT.min(client_timeout),
            failures: AtomicU64::new(0),
        }
    }

    /// Completes the handshake, or says why it failed (logged and counted here).
    pub(crate) async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        frontend: &str,
        stream: S,
        peer: std::net::SocketAddr,
    ) -> Option<(TlsStream<Held<S>>, Arc<TlsFacts>)> {
        let handshake = self.acceptor.accept(Held::new(stream));
        let reason = match tokio::time::timeout(self.deadline, handshake).await {
            Ok(Ok(mut tls)) => {
                let (io, conn) = tls.get_mut();
                // Records read with the client's Finished are decrypted now rather than at the
                // first read (an error there is met again, and logged, by that read).
                let request_read = conn
                    .process_new_packets()
                    .is_ok_and(|s| s.plaintext_bytes_to_read() > 0);
                io.handshake_done(request_read);
                let facts = facts(tls.get_ref().1);
                return Some((tls, Arc::new(facts)));
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no handshake within {:?}", self.deadline),
        };
        self.failures.fetch_add(1, Ordering::Relaxed);
        tracing::info!(frontend, client = %peer, %reason, "TLS handshake failed");
        None
    }
}

fn facts(conn: &rustls::ServerConnection) -> TlsFacts {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "TLS",
    };
    let cipher = conn
        .negotiated_cipher_suite()
        .and_then(|s| s.suite().as_str())
        .unwrap_or("-");
    TlsFacts {
        version,
        cipher,
        sni: conn.server_name().map(Into::into),
    }
}
