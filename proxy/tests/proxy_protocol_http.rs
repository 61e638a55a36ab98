//! The PROXY protocol in HTTP mode (lb.md §11) on loopback: `accept_proxy` on plain and TLS
//! frontends (the header before the first request, or before the ClientHello), `send_proxy`
//! v1/v2 to the servers, the carried client everywhere (X-Forwarded-For, `source`
//! balancing, server connections reused for that client only), and bad or missing headers
//! closing the connection before anything reaches a server.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::eventually;
use proxy::config::{
    BackendConfig, Balance, CertSource, FrontendConfig, ProxyConfig, ProxyVersion, ServerConfig,
    TlsConfig,
};
use proxy::tcp::proxy_header::{self, Parse, ProxyHeader};
use proxy::Proxy;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const WAIT: Duration = Duration::from_secs(5);

/// A server that expects a PROXY header on each connection, then answers every HTTP/1.1
/// request (no body) with `<name> conn=<n> src=<src> dst=<dst> xff=<X-Forwarded-For>`.
/// A connection without a valid header is counted in `bad` and closed.
struct HeaderServer {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    bad: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HeaderServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn header_server(name: &'static str) -> HeaderServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let bad = Arc::new(AtomicUsize::new(0));
    let (c, b) = (connections.clone(), bad.clone());
    let task = tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let n = c.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::spawn(serve_one(name, n, s, b.clone()));
        }
    });
    HeaderServer {
        addr,
        connections,
        bad,
        task,
    }
}

async fn serve_one(name: &str, n: usize, mut s: TcpStream, bad: Arc<AtomicUsize>) {
    let mut buf = Vec::new();
    let (src, dst) = loop {
        match proxy_header::parse(&buf) {
            Ok(Parse::Done {
                header: ProxyHeader::Tcp { src, dst },
                len,
            }) => {
                buf.drain(..len);
                break (src, dst);
            }
            Ok(Parse::NeedMore) => {}
            _ => {
                bad.fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
        let mut chunk = [0u8; 256];
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
        }
    };
    loop {
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(k) => buf.extend_from_slice(&chunk[..k]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end + 4);
        let xff = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("x-forwarded-for")
                    .then(|| v.trim().to_string())
            })
            .unwrap_or_default();
        let body = format!("{name} conn={n} src={src} dst={dst} xff={xff}");
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if s.write_all(resp.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn start(fe: FrontendConfig, be: BackendConfig) -> (Proxy, SocketAddr) {
    let mut cfg = ProxyConfig::new(vec![fe], vec![be]);
    cfg.node = "test".into();
    let proxy = Proxy::start(cfg).expect("proxy starts");
    let addr = proxy.local_addrs("www")[0];
    (proxy, addr)
}

fn frontend() -> FrontendConfig {
    let mut f = FrontendConfig::new("www", vec!["127.0.0.1:0".parse().unwrap()]);
    f.default_backend = Some("app".into());
    f.accept_proxy = true;
    f.forwarded_for = true;
    f
}

fn backend(servers: &[&HeaderServer], version: ProxyVersion) -> BackendConfig {
    let servers = servers
        .iter()
        .enumerate()
        .map(|(i, s)| ServerConfig::new(format!("s{i}"), s.addr))
        .collect();
    let mut b = BackendConfig::new("app", servers);
    b.send_proxy = Some(version);
    b
}

/// Reads one response with a Content-Length body; returns its body.
async fn response<S: AsyncRead + Unpin>(s: &mut S) -> Option<String> {
    let mut buf = Vec::new();
    let read = async {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    return Some(String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into());
                }
            }
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(WAIT, read).await.ok().flatten()
}

async fn get<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) -> Option<String> {
    s.write_all(b"GET /x HTTP/1.1\r\nHost: www.example.test\r\n\r\n")
        .await
        .ok()?;
    response(s).await
}

fn field<'a>(body: &'a str, key: &str) -> &'a str {
    body.split(' ')
        .find_map(|w| w.strip_prefix(key).and_then(|w| w.strip_prefix('=')))
        .unwrap_or("")
}

/// The carried client reaches the server in the v1 header and in X-Forwarded-For; the
/// header and the first request may come in one segment; keep-alive requests of that
/// client reuse its server connection, another client never gets it.
#[tokio::test]
async fn carried_client_reaches_the_server_and_owns_its_connection() {
    let s = header_server("a").await;
    let (_proxy, addr) = start(frontend(), backend(&[&s], ProxyVersion::V1));

    let mut c1 = TcpStream::connect(addr).await.unwrap();
    c1.write_all(b"PROXY TCP4 203.0.113.7 198.51.100.1 40000 80\r\nGET /x HTTP/1.1\r\nHost: www.example.test\r\n\r\n")
        .await
        .unwrap();
    let first = response(&mut c1).await.expect("first answer");
    assert_eq!(field(&first, "src"), "203.0.113.7:40000", "{first}");
    assert_eq!(field(&first, "dst"), "198.51.100.1:80", "{first}");
    assert_eq!(field(&first, "xff"), "203.0.113.7", "{first}");
    let second = get(&mut c1).await.expect("second answer");
    assert_eq!(
        field(&second, "conn"),
        field(&first, "conn"),
        "same client, same server connection: {first} / {second}"
    );

    // Another client while the first one's connection is idle in the pool.
    let mut c2 = TcpStream::connect(addr).await.unwrap();
    c2.write_all(b"PROXY TCP4 203.0.113.8 198.51.100.1 40001 80\r\n")
        .await
        .unwrap();
    let other = get(&mut c2).await.expect("other client");
    assert_eq!(field(&other, "src"), "203.0.113.8:40001", "{other}");
    assert_eq!(field(&other, "xff"), "203.0.113.8", "{other}");
    assert_ne!(field(&other, "conn"), field(&first, "conn"), "{other}");
    // The first client's connection is still its own.
    let third = get(&mut c1).await.expect("third answer");
    assert_eq!(field(&third, "conn"), field(&first, "conn"), "{third}");
    assert_eq!(field(&third, "src"), "203.0.113.7:40000", "{third}");
    assert_eq!(s.connections.load(Ordering::SeqCst), 2);
    assert_eq!(s.bad.load(Ordering::SeqCst), 0);
}

/// A v2 header split over three segments (IPv6 addresses) and `send_proxy: v2`.
#[tokio::test]
async fn split_v2_header_and_v2_to_the_server() {
    let s = header_server("a").await;
    let (_proxy, addr) = start(frontend(), backend(&[&s], ProxyVersion::V2));
    let head = proxy_header::encode_v2(
        "[2001:db8::7]:50000".parse().unwrap(),
        "[2001:db8::1]:443".parse().unwrap(),
    );
    let mut c = TcpStream::connect(addr).await.unwrap();
    for part in [&head[..5], &head[5..20], &head[20..]] {
        c.write_all(part).await.unwrap();
        c.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let body = get(&mut c).await.expect("answer");
    assert_eq!(field(&body, "src"), "[2001:db8::7]:50000", "{body}");
    assert_eq!(field(&body, "dst"), "[2001:db8::1]:443", "{body}");
    assert_eq!(field(&body, "xff"), "2001:db8::7", "{body}");
}

/// `source` balancing hashes the carried address: one carried client always lands on the
/// same server whatever its TCP connection, and twenty carried clients (all from 127.0.0.1
/// underneath) are spread over both servers.
#[tokio::test]
async fn source_balancing_uses_the_carried_address() {
    let a = header_server("a").await;
    let b = header_server("b").await;
    let mut be = backend(&[&a, &b], ProxyVersion::V1);
    be.balance = Balance::Source;
    let (_proxy, addr) = start(frontend(), be);
    let ask = |ip: String| async move {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(format!("PROXY TCP4 {ip} 198.51.100.1 40000 80\r\n").as_bytes())
            .await
            .unwrap();
        let body = get(&mut c).await.expect("answer");
        body.split(' ').next().unwrap_or("").to_string()
    };
    let mut seen = std::collections::BTreeSet::new();
    for i in 1..=20 {
        let ip = format!("203.0.113.{i}");
        let first = ask(ip.clone()).await;
        for _ in 0..3 {
            assert_eq!(ask(ip.clone()).await, first, "{ip} moved");
        }
        seen.insert(first);
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
}

/// No header, a malformed one, a truncated one and a silent client: each connection is
/// closed without an answer, nothing reaches a server, and the errors are counted.
#[tokio::test]
async fn missing_or_bad_headers_close_the_connection() {
    let s = header_server("a").await;
    let mut fe = frontend();
    fe.timeouts.http_request = Duration::from_millis(300);
    let (proxy, addr) = start(fe, backend(&[&s], ProxyVersion::V1));
    let cases: [&[u8]; 4] = [
        b"GET /x HTTP/1.1\r\nHost: www.example.test\r\n\r\n",
        b"PROXY TCP4 203.0.113.300 198.51.100.1 1 80\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"PROXY TCP4 203.0.113.7 198.51.100.1 40000 8",
        b"PROXY TCP4 203.0.113.7 198.51.100.1 40000 80 and a much longer line than v1 allows, going on and on past 107 bytes\r\n",
    ];
    for case in cases {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(case).await.unwrap();
        let answer = common::read_until_close(&mut c, WAIT).await;
        assert_eq!(answer, "", "{:?}", String::from_utf8_lossy(case));
    }
    // Connected, then closed without a byte: a probe, not an error.
    drop(TcpStream::connect(addr).await.unwrap());
    let errors = || {
        proxy
            .stats()
            .frontends
            .iter()
            .find(|f| f.name == "www")
            .map_or(0, |f| f.counters.errors_request)
    };
    eventually("four request errors", WAIT, || errors() == 4).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(errors(), 4);
    assert_eq!(s.connections.load(Ordering::SeqCst), 0);
}

/// On a TLS frontend the PROXY header comes before the ClientHello; the request inside the
/// TLS session is answered for the carried client.
#[tokio::test]
async fn tls_frontend_reads_the_header_before_the_handshake() {
    let s = header_server("a").await;
    let dir = std::env::temp_dir().join(format!("vrrplb-httpx-pp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["www.example.test".to_string()]).unwrap();
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(30);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let pem = dir.join("www.pem");
    std::fs::write(&pem, format!("{}{}", cert.pem(), key.serialize_pem())).unwrap();

    let mut fe = frontend();
    let mut tls = TlsConfig::new(vec![CertSource::Pem(pem)]);
    tls.alpn = vec!["http/1.1".into()];
    fe.tls = Some(tls);
    let (_proxy, addr) = start(fe, backend(&[&s], ProxyVersion::V2));
    let _ = std::fs::remove_dir_all(&dir);

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));

    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"PROXY TCP4 203.0.113.9 198.51.100.1 41000 443\r\n")
        .await
        .unwrap();
    let name = rustls_pki_types::ServerName::try_from("www.example.test").unwrap();
    let mut tls = tokio::time::timeout(WAIT, connector.connect(name, tcp))
        .await
        .expect("handshake in time")
        .expect("handshake");
    let body = get(&mut tls).await.expect("answer over TLS");
    assert_eq!(field(&body, "src"), "203.0.113.9:41000", "{body}");
    assert_eq!(field(&body, "dst"), "198.51.100.1:443", "{body}");
    assert_eq!(field(&body, "xff"), "203.0.113.9", "{body}");

    // The same frontend without the header: the ClientHello is not a PROXY header.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("www.example.test").unwrap();
    let r = tokio::time::timeout(WAIT, connector.connect(name, tcp))
        .await
        .expect("closed in time");
    assert!(r.is_err(), "a handshake without the PROXY header must fail");
}

/// Frontend `rules` judge the carried client: a deny for 203.0.113.66/32 refuses that
/// client (403 before any server) and lets another carried client through, although both
/// connect from 127.0.0.1.
#[tokio::test]
async fn rules_see_the_carried_client() {
    use proxy::config::{AccessRule, Cidr, RuleAction};
    let s = header_server("a").await;
    let mut fe = frontend();
    fe.rules = vec![AccessRule {
        src: vec![Cidr::parse("203.0.113.66/32").unwrap()],
        methods: Vec::new(),
        path_prefix: None,
        action: RuleAction::Deny(403),
    }];
    let (_proxy, addr) = start(fe, backend(&[&s], ProxyVersion::V1));
    let ask = |ip: &'static str| async move {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(format!("PROXY TCP4 {ip} 198.51.100.1 40000 80\r\nGET /x HTTP/1.1\r\nHost: www.example.test\r\nConnection: close\r\n\r\n").as_bytes())
            .await
            .unwrap();
        common::read_until_close(&mut c, WAIT).await
    };
    let denied = ask("203.0.113.66").await;
    assert!(denied.starts_with("HTTP/1.1 403"), "{denied}");
    let allowed = ask("203.0.113.67").await;
    assert!(allowed.starts_with("HTTP/1.1 200"), "{allowed}");
    assert!(allowed.contains("src=203.0.113.67:40000"), "{allowed}");
    assert_eq!(s.connections.load(Ordering::SeqCst), 1);
}

/// The destination a server is told is the address the client reached: the bound one on a
/// listener bound to one address, the one the kernel reports on a wildcard listener (here
/// 127.0.0.3, a loopback address the listener was not bound to by name).
#[tokio::test]
async fn destination_is_the_address_the_client_reached() {
    let s = header_server("a").await;
    for (bind, reach) in [("127.0.0.1:0", "127.0.0.1"), ("0.0.0.0:0", "127.0.0.3")] {
        let mut fe = frontend();
        fe.bind = vec![bind.parse().unwrap()];
        fe.accept_proxy = false;
        let (_proxy, addr) = start(fe, backend(&[&s], ProxyVersion::V1));
        let to = SocketAddr::new(reach.parse().unwrap(), addr.port());
        let mut c = TcpStream::connect(to).await.unwrap();
        let answer = get(&mut c).await.expect("answer");
        assert_eq!(
            field(&answer, "dst"),
            to.to_string(),
            "bound {bind}: {answer}"
        );
        assert_eq!(field(&answer, "src"), c.local_addr().unwrap().to_string());
    }
    assert_eq!(s.bad.load(Ordering::SeqCst), 0);
}
