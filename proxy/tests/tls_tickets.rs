//! TLS 1.3 session tickets (listen/tls/held.rs): a client whose request comes with its
//! Finished gets them in the same segment as the answer, one data segment less than a
//! client that waits before asking (counted by the client's kernel, TCP_INFO); a client that
//! says nothing after its handshake still gets them at once; and the next connection resumes
//! with one of them. TLS 1.2, whose ticket is part of the handshake, resumes too. rustls as
//! the client, over real loopback sockets.

mod common;

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use proxy::config::{CertSource, TlsConfig};
use rustls::HandshakeKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

const WAIT: Duration = Duration::from_secs(5);

struct Site {
    run: Running,
    dir: std::path::PathBuf,
    roots: rustls::RootCertStore,
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TLS frontend (ECDSA certificate for `localhost`, TLS 1.2 and 1.3) before `server`.
fn site(test: &str, server: &TestServer) -> Site {
    let dir = std::env::temp_dir().join(format!("vrrplb-tickets-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (pem, cert) = localhost_pem(&dir);
    let mut fe = frontend(vec![], Some("be"));
    fe.tls = Some(TlsConfig::new(vec![CertSource::Pem(pem)]));
    let run = start(vec![fe], vec![backend("be", &[server])]);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).expect("root");
    Site { run, dir, roots }
}

/// Client settings of one TLS version that keep the sessions they are given (rustls'
/// default store).
fn client(
    s: &Site,
    version: &'static rustls::SupportedProtocolVersion,
) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut c = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .expect("versions")
        .with_root_certificates(s.roots.clone())
        .with_no_client_auth();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(c)
}

fn connector(
    s: &Site,
    version: &'static rustls::SupportedProtocolVersion,
) -> tokio_rustls::TlsConnector {
    tokio_rustls::TlsConnector::from(client(s, version))
}

const REQUEST: &[u8] = b"GET /t HTTP/1.1\r\nHost: localhost\r\n\r\n";

/// One connection driven by hand (blocking, on its own thread): the handshake, then the
/// request in the same write as the client's Finished (`wait` None) or `wait` after it, then
/// the answer. Says how many segments with data the client's kernel received on it, and
/// whether it resumed a session.
fn by_hand(
    addr: std::net::SocketAddr,
    cfg: Arc<rustls::ClientConfig>,
    wait: Option<Duration>,
) -> (u32, bool) {
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = rustls::ClientConnection::new(cfg, name).expect("client");
    let mut sock = std::net::TcpStream::connect(addr).expect("connect");
    sock.set_read_timeout(Some(WAIT)).expect("timeout");
    while tls.is_handshaking() {
        while tls.wants_write() {
            tls.write_tls(&mut sock).expect("write");
        }
        if tls.is_handshaking() {
            tls.read_tls(&mut sock).expect("read");
            tls.process_new_packets().expect("handshake");
        }
    }
    // The client's Finished is queued, not yet sent.
    if let Some(wait) = wait {
        while tls.wants_write() {
            tls.write_tls(&mut sock).expect("finished");
        }
        std::thread::sleep(wait);
    }
    tls.writer().write_all(REQUEST).expect("request");
    while tls.wants_write() {
        tls.write_tls(&mut sock).expect("request out");
    }
    let mut answer = Vec::new();
    while !complete(&answer) {
        assert!(tls.read_tls(&mut sock).expect("read answer") > 0, "closed");
        tls.process_new_packets().expect("records");
        let mut chunk = [0u8; 4096];
        while let Ok(n) = tls.reader().read(&mut chunk) {
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&chunk[..n]);
        }
    }
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let resumed = tls.handshake_kind() == Some(HandshakeKind::Resumed);
    (data_segments_in(&sock), resumed)
}

/// Whether `got` holds a whole answer (head and Content-Length body).
fn complete(got: &[u8]) -> bool {
    let text = String::from_utf8_lossy(got);
    let Some(end) = text.find("\r\n\r\n") else {
        return false;
    };
    let len: usize = text[..end]
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_string())
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    got.len() >= end + 4 + len
}

/// Segments carrying data that the kernel received on `sock` (TCP_INFO tcpi_data_segs_in).
fn data_segments_in(sock: &std::net::TcpStream) -> u32 {
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    assert_eq!(r, 0, "TCP_INFO: {}", std::io::Error::last_os_error());
    info.tcpi_data_segs_in
}

async fn connect(s: &Site, tls: &tokio_rustls::TlsConnector) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(s.run.addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    tokio::time::timeout(WAIT, tls.connect(name, tcp))
        .await
        .expect("handshake in time")
        .expect("handshake")
}

/// Bytes the server sent that the client's TLS has not read yet (waits up to 300 ms).
async fn unread(c: &TlsStream<TcpStream>) -> usize {
    let mut buf = [0u8; 2048];
    match tokio::time::timeout(Duration::from_millis(300), c.get_ref().0.peek(&mut buf)).await {
        Ok(Ok(n)) => n,
        Ok(Err(e)) => panic!("peek: {e}"),
        Err(_) => 0,
    }
}

/// One GET on `c`; the answer's head and body as text.
async fn get(c: &mut TlsStream<TcpStream>) -> String {
    c.write_all(REQUEST).await.expect("request");
    let mut got = Vec::new();
    let read = async {
        while !complete(&got) {
            let mut chunk = [0u8; 4096];
            let n = c.read(&mut chunk).await.expect("read");
            assert!(n > 0, "closed before the answer ended");
            got.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("answer in time");
    String::from_utf8_lossy(&got).into_owned()
}

/// A connection with a full handshake: `unread_bytes` checks what it was sent before it asks;
/// it asks once; then a second connection resumes with what the first was given and is
/// answered too. Returns the first connection, still open.
async fn full_then_resumed(
    s: &Site,
    tls: &tokio_rustls::TlsConnector,
    unread_bytes: impl FnOnce(usize),
) -> TlsStream<TcpStream> {
    let mut first = connect(s, tls).await;
    assert_eq!(
        first.get_ref().1.handshake_kind(),
        Some(HandshakeKind::Full)
    );
    unread_bytes(unread(&first).await);
    let answer = get(&mut first).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("x-server: web"),
        "{answer}"
    );
    let mut second = connect(s, tls).await;
    assert_eq!(
        second.get_ref().1.handshake_kind(),
        Some(HandshakeKind::Resumed),
        "no ticket reached the client"
    );
    assert!(get(&mut second).await.starts_with("HTTP/1.1 200"));
    first
}

#[tokio::test]
async fn tls13_tickets_leave_with_the_answer_to_a_request_sent_with_finished() {
    let web = TestServer::start("web").await;
    let s = site("tls13", &web);
    let addr = s.run.addr;
    // Each on settings of its own, so that both make a full handshake.
    let (c1, c2) = (
        client(&s, &rustls::version::TLS13),
        client(&s, &rustls::version::TLS13),
    );
    let (prompt, late) = tokio::task::spawn_blocking(move || {
        let prompt = by_hand(addr, c1, None);
        let late = by_hand(addr, c2, Some(Duration::from_millis(200)));
        (prompt, late)
    })
    .await
    .expect("clients");
    assert!(!prompt.1 && !late.1, "full handshakes");
    // The client that waited got its tickets on their own, as soon as the server's first read
    // after the handshake found nothing; the prompt one got them with the answer.
    assert_eq!(
        prompt.0 + 1,
        late.0,
        "data segments received: request with Finished {}, request 200 ms later {}",
        prompt.0,
        late.0
    );
}

#[tokio::test]
async fn tls13_tickets_reach_a_silent_client_and_resume_the_next_connection() {
    let web = TestServer::start("web").await;
    let s = site("silent", &web);
    let tls = connector(&s, &rustls::version::TLS13);
    // No request at first: the tickets come anyway (what `openssl s_client -sess_out` waits
    // for).
    let mut first = full_then_resumed(&s, &tls, |n| {
        assert!(n > 0, "the tickets wait for a request that never comes")
    })
    .await;
    // A keep-alive request after the first, answered as usual.
    assert!(get(&mut first).await.starts_with("HTTP/1.1 200"));

    // Tickets that came with an answer resume a connection as well.
    let cfg = client(&s, &rustls::version::TLS13);
    let addr = s.run.addr;
    let resumed = tokio::task::spawn_blocking(move || {
        by_hand(addr, cfg.clone(), None);
        by_hand(addr, cfg, None).1
    })
    .await
    .expect("clients");
    assert!(resumed, "the tickets sent with the answer did not resume");
}

#[tokio::test]
async fn tls12_handshake_is_not_held_and_resumes() {
    let web = TestServer::start("web").await;
    let s = site("tls12", &web);
    let tls = connector(&s, &rustls::version::TLS12);
    // TLS 1.2 sends its ticket within the handshake: nothing follows it.
    full_then_resumed(&s, &tls, |n| assert_eq!(n, 0)).await;
}
