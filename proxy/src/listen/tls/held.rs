//! The transport under a TLS server connection, which holds back the session tickets TLS 1.3
//! sends at the end of the handshake so that they leave with the connection's first answer:
//! one segment and one system call less per connection (HAProxy with OpenSSL sends them on
//! their own). Nothing waits on them: a client needs its tickets only to resume a later
//! connection.
//!
//! While the handshake runs, a write made only of whole `application_data` records is
//! held: in a TLS 1.3 handshake the server's flights begin with a handshake record
//! (ServerHello) and only the post-handshake messages (the tickets) are written after them
//! as application data alone; TLS 1.2 writes no application data before the handshake ends.
//! Held bytes leave in front of the next write, at shutdown, or as soon as a read would wait
//! while the client has not yet sent anything after its handshake: during the handshake (so
//! a flight cut short by a full socket buffer can never stall it), and for a client that says
//! nothing at first (a browser's preconnect, `openssl s_client -sess_out`), which gets its
//! tickets at once as from HAProxy. Only a client whose request came with, or right after,
//! its Finished has them sent with the answer. A connection that ends without writing again
//! drops them.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// TLS record type of application data (RFC 8446 §5.1).
const APPLICATION_DATA: u8 = 23;

/// The most held: two tickets are a few hundred bytes; anything larger is written at once.
const HOLD_MAX: usize = 4096;

/// A transport that holds the tickets written at the end of a TLS 1.3 handshake.
pub(crate) struct Held<S> {
    io: S,
    /// Bytes written by TLS but not yet sent, and how many of them have been sent.
    held: Vec<u8>,
    sent: usize,
    handshaking: bool,
    /// A read that would wait sends what is held: until the client's first bytes after the
    /// handshake.
    release_on_wait: bool,
}

impl<S> Held<S> {
    pub(crate) fn new(io: S) -> Self {
        Held {
            io,
            held: Vec::new(),
            sent: 0,
            handshaking: true,
            release_on_wait: true,
        }
    }

    /// The handshake is over: from now on writes are never held, and the next one carries
    /// what is. `request_read`: the handshake's last read already brought application data
    /// (the request came with the client's Finished).
    pub(crate) fn handshake_done(&mut self, request_read: bool) {
        self.handshaking = false;
        self.release_on_wait = !request_read;
    }

    /// Bytes held and not yet sent.
    fn holding(&self) -> usize {
        self.held.len() - self.sent
    }
}

impl<S: AsyncWrite + Unpin> Held<S> {
    /// Sends what is held, up to the first write that would wait.
    fn poll_release(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.holding() > 0 {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.held[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.advance(n);
        }
        Poll::Ready(Ok(()))
    }

    fn advance(&mut self, n: usize) {
        self.sent += n;
        if self.sent >= self.held.len() {
            self.held = Vec::new();
            self.sent = 0;
        }
    }
}

/// Whether `bufs` together are a sequence of whole TLS records, each of them application
/// data, of `HOLD_MAX` bytes at most.
fn only_application_data(bufs: &[IoSlice<'_>]) -> bool {
    let total: usize = bufs.iter().map(|b| b.len()).sum();
    if total == 0 || total > HOLD_MAX {
        return false;
    }
    let mut bytes = bufs.iter().flat_map(|b| b.iter().copied());
    let mut left = total;
    while left > 0 {
        if left < 5 {
            return false;
        }
        let mut header = [0u8; 5];
        for (h, b) in header.iter_mut().zip(bytes.by_ref()) {
            *h = b;
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if header[0] != APPLICATION_DATA || len > left - 5 {
            return false;
        }
        if len > 0 && bytes.nth(len - 1).is_none() {
            return false;
        }
        left -= 5 + len;
    }
    true
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Held<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let read = Pin::new(&mut this.io).poll_read(cx, buf);
        if read.is_pending() {
            if this.release_on_wait && this.holding() > 0 {
                // The client is silent: nothing gains from waiting for an answer.
                if let Poll::Ready(Err(e)) = this.poll_release(cx) {
                    return Poll::Ready(Err(e));
                }
            }
        } else if !this.handshaking {
            this.release_on_wait = false;
        }
        read
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Held<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.handshaking && this.holding() == 0 && only_application_data(bufs) {
            for b in bufs {
                this.held.extend_from_slice(b);
            }
            return Poll::Ready(Ok(this.held.len()));
        }
        while this.holding() > 0 {
            // What is held goes first, in the same system call as what is written now.
            let rest = this.holding();
            let mut all = Vec::with_capacity(bufs.len() + 1);
            all.push(IoSlice::new(&this.held[this.sent..]));
            all.extend(bufs.iter().map(|b| IoSlice::new(b)));
            let n = ready!(Pin::new(&mut this.io).poll_write_vectored(cx, &all))?;
            if n == 0 {
                return Poll::Ready(Ok(0));
            }
            this.advance(n.min(rest));
            if n > rest {
                return Poll::Ready(Ok(n - rest));
            }
        }
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Held bytes stay held: the handshake's last flush is what would send the tickets
        // alone.
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_release(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn record(kind: u8, len: usize) -> Vec<u8> {
        let mut r = vec![kind, 3, 3];
        r.extend_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
        r.extend(std::iter::repeat_n(0xab, len));
        r
    }

    /// What the peer has been sent so far (waits 50 ms for more).
    async fn sent(peer: &mut tokio::io::DuplexStream) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(50), peer.read(&mut buf)).await
        {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        got
    }

    #[tokio::test]
    async fn held_tickets_go_with_the_next_write_at_shutdown_or_when_a_handshake_read_waits() {
        let ticket = record(23, 100);
        // The request came with the client's Finished: the next write carries them, in
        // front, and a read that waits meanwhile (hyper watching for the client's close)
        // leaves them held.
        let (a, mut peer) = tokio::io::duplex(8192);
        let mut h = Held::new(a);
        h.write_all(&ticket).await.unwrap();
        h.flush().await.unwrap();
        assert!(sent(&mut peer).await.is_empty(), "sent at once");
        h.handshake_done(true);
        let mut buf = [0u8; 16];
        let waited = tokio::time::timeout(Duration::from_millis(50), h.read(&mut buf)).await;
        assert!(waited.is_err(), "nothing to read");
        assert!(sent(&mut peer).await.is_empty(), "sent on a read");
        h.write_all(b"answer").await.unwrap();
        assert_eq!(sent(&mut peer).await, [&ticket[..], b"answer"].concat());
        // Never held again once the handshake is done.
        h.write_all(&ticket).await.unwrap();
        assert_eq!(sent(&mut peer).await, ticket);

        // At shutdown.
        let (a, mut peer) = tokio::io::duplex(8192);
        let mut h = Held::new(a);
        h.write_all(&ticket).await.unwrap();
        h.shutdown().await.unwrap();
        assert_eq!(sent(&mut peer).await, ticket);

        // While the handshake waits for the client.
        let (a, mut peer) = tokio::io::duplex(8192);
        let mut h = Held::new(a);
        h.write_all(&ticket).await.unwrap();
        let waited = tokio::time::timeout(Duration::from_millis(50), h.read(&mut buf)).await;
        assert!(waited.is_err(), "nothing to read");
        assert_eq!(sent(&mut peer).await, ticket);
        // A handshake record is never held.
        let hello = record(22, 40);
        h.write_all(&hello).await.unwrap();
        assert_eq!(sent(&mut peer).await, hello);

        // A client silent after its handshake gets them when the first read waits; one whose
        // first read brought bytes does not until the answer.
        let (a, mut peer) = tokio::io::duplex(8192);
        let mut h = Held::new(a);
        h.write_all(&ticket).await.unwrap();
        h.handshake_done(false);
        let waited = tokio::time::timeout(Duration::from_millis(50), h.read(&mut buf)).await;
        assert!(waited.is_err(), "nothing to read");
        assert_eq!(sent(&mut peer).await, ticket);
        let (a, mut peer) = tokio::io::duplex(8192);
        let mut h = Held::new(a);
        h.write_all(&ticket).await.unwrap();
        h.handshake_done(false);
        peer.write_all(b"GET").await.unwrap();
        assert_eq!(h.read(&mut buf).await.unwrap(), 3);
        let waited = tokio::time::timeout(Duration::from_millis(50), h.read(&mut buf)).await;
        assert!(waited.is_err(), "nothing more to read");
        assert!(
            sent(&mut peer).await.is_empty(),
            "sent on a read after the request"
        );
        h.write_all(b"answer").await.unwrap();
        assert_eq!(sent(&mut peer).await, [&ticket[..], b"answer"].concat());
    }

    #[test]
    fn only_whole_application_data_records_are_held() {
        let t1 = record(23, 200);
        let t2 = record(23, 180);
        let hs = record(22, 90);
        let yes = |parts: &[&[u8]]| {
            let bufs: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
            only_application_data(&bufs)
        };
        assert!(yes(&[&t1, &t2]));
        assert!(yes(&[&[t1.clone(), t2.clone()].concat()]));
        // A record split over two slices is still whole.
        assert!(yes(&[&t1[..3], &t1[3..]]));
        assert!(yes(&[&record(23, 0)]));
        // A handshake record anywhere, a cut record, nothing, or too much: written at once.
        assert!(!yes(&[&hs, &t1]));
        assert!(!yes(&[&t1, &hs]));
        assert!(!yes(&[&t1[..t1.len() - 1]]));
        assert!(!yes(&[&t1[..4]]));
        assert!(!yes(&[]));
        assert!(!yes(&[&record(23, 5000)]));
        assert!(!yes(&[&record(21, 2)]));
    }
}
