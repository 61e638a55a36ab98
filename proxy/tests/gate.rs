//! Listener life cycle: the gate, shutdown with drain, frontend maxconn, IPv6 binds.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use proxy::config::{CertSource, FrontendConfig, ProxyConfig, TlsConfig};
use proxy::Proxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn refused(addr: SocketAddr) -> bool {
    matches!(TcpStream::connect(addr).await, Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused)
}

fn gated_frontend(port: u16) -> FrontendConfig {
    let mut f = FrontendConfig::new("www", vec![format!("127.0.0.1:{port}").parse().unwrap()]);
    f.gated = true;
    f.default_backend = Some("be".into());
    f
}

#[tokio::test]
async fn gate_closes_and_reopens_the_listener() {
    let s = TestServer::start("s").await;
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut cfg = ProxyConfig::new(vec![gated_frontend(port)], vec![backend("be", &[&s])]);
    cfg.gate_drain = Duration::from_secs(2);
    let proxy = Proxy::start(cfg).unwrap();
    let gate = proxy.gate();
    assert!(!gate.is_serving());
    assert!(refused(addr).await, "gated frontend starts closed");

    let c = client();
    let url = format!("http://{addr}/");
    gate.set_serving(true).await.unwrap();
    gate.set_serving(true).await.unwrap();
    assert!(gate.is_serving());
    assert_eq!(get(&c, &url).await.status, 200);

    // An in-flight request survives the close; new connections are refused at once.
    let c2 = client();
    let slow_url = format!("http://{addr}/slow/500");
    let slow = tokio::spawn(async move { get(&c2, &slow_url).await });
    eventually("slow request in flight", Duration::from_secs(2), || {
        s.hits() == 2
    })
    .await;
    gate.set_serving(false).await.unwrap();
    gate.set_serving(false).await.unwrap();
    assert!(refused(addr).await, "closed gate refuses connections");
    assert_eq!(slow.await.unwrap().status, 200, "in-flight request drained");

    gate.set_serving(true).await.unwrap();
    let fresh = client();
    assert_eq!(get(&fresh, &url).await.status, 200);
    proxy.shutdown(Duration::from_secs(1)).await;
    assert!(refused(addr).await);
}

#[tokio::test]
async fn health_checks_run_while_the_gate_is_closed() {
    let s = TestServer::start("s").await;
    let mut be = backend("be", &[&s]);
    be.health_check = Some(fast_checks());
    let proxy = Proxy::start(ProxyConfig::new(
        vec![gated_frontend(free_port())],
        vec![be],
    ))
    .unwrap();
    let mut h = proxy.backend_health("be").unwrap();
    assert!(proxy.backend_health("nope").is_none());
    s.healthy.store(false, std::sync::atomic::Ordering::SeqCst);
    tokio::time::timeout(
        Duration::from_secs(3),
        h.wait_for(|h| h.up == 0 && h.total == 1),
    )
    .await
    .expect("DOWN while gated")
    .unwrap();
    s.healthy.store(true, std::sync::atomic::Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(3), h.wait_for(|h| h.up == 1))
        .await
        .expect("UP again after rise checks")
        .unwrap();
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let s = TestServer::start("s").await;
    let p = start(
        vec![frontend(vec![], Some("be"))],
        vec![backend("be", &[&s])],
    );
    let c = client();
    let url = format!("{}/slow/400", p.base);
    let req = tokio::spawn(async move { get(&c, &url).await });
    eventually("request in flight", Duration::from_secs(2), || {
        s.hits() == 1
    })
    .await;
    let t = Instant::now();
    p.proxy.shutdown(Duration::from_secs(3)).await;
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(req.await.unwrap().status, 200);
    assert!(refused(p.addr).await);
}

#[tokio::test]
async fn shutdown_cuts_what_outlives_the_drain() {
    let s = TestServer::start("s").await;
    let p = start(
        vec![frontend(vec![], Some("be"))],
        vec![backend("be", &[&s])],
    );
    let c = client();
    let url = format!("{}/slow/5000", p.base);
    let req = tokio::spawn(async move {
        let r = http::Request::get(&url)
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        send(&c, r).await
    });
    eventually("request in flight", Duration::from_secs(2), || {
        s.hits() == 1
    })
    .await;
    let t = Instant::now();
    p.proxy.shutdown(Duration::from_millis(300)).await;
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(
        req.await.unwrap().is_err(),
        "connection cut at the drain deadline"
    );
}

#[tokio::test]
async fn frontend_maxconn_stops_accepting() {
    let s = TestServer::start("s").await;
    let mut f = frontend(vec![], Some("be"));
    f.maxconn = Some(1);
    let p = start(vec![f], vec![backend("be", &[&s])]);
    let mut first = TcpStream::connect(p.addr).await.unwrap();
    first
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    eventually("first served", Duration::from_secs(2), || s.hits() == 1).await;
    // The second connection waits in the backlog: no answer while the first is open.
    let second = tokio::spawn(raw(
        p.addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.hits(), 1, "second connection must not be served yet");
    drop(first);
    let resp = second.await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert_eq!(s.hits(), 2);
}

#[tokio::test]
async fn ipv6_loopback_bind() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback here; skipped");
        return;
    }
    let s = TestServer::start("s").await;
    let mut f = frontend(vec![], Some("be"));
    f.bind = vec!["[::1]:0".parse().unwrap(), "127.0.0.1:0".parse().unwrap()];
    let p = start(vec![f], vec![backend("be", &[&s])]);
    let addrs = p.proxy.local_addrs("www");
    assert_eq!(addrs.len(), 2);
    let c = client();
    for a in addrs {
        let r = get(&c, &format!("http://{a}/")).await;
        assert_eq!(r.status, 200);
    }
}

#[tokio::test]
async fn bind_failure_is_reported() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let s = TestServer::start("s").await;
    let mut f = frontend(vec![], Some("be"));
    f.bind = vec![addr];
    let err = Proxy::start(ProxyConfig::new(vec![f], vec![backend("be", &[&s])]))
        .err()
        .expect("address in use");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

#[tokio::test]
async fn frontends_can_be_gated_separately() {
    let s = TestServer::start("s").await;
    let (p1, p2) = (free_port(), free_port());
    let mut f1 = gated_frontend(p1);
    f1.name = "one".into();
    let mut f2 = gated_frontend(p2);
    f2.name = "two".into();
    let proxy = Proxy::start(ProxyConfig::new(vec![f1, f2], vec![backend("be", &[&s])])).unwrap();
    assert!(proxy.frontend_gate("nope").is_none());
    let one = proxy.frontend_gate("one").unwrap();
    one.set_serving(true).await.unwrap();
    let c = client();
    assert_eq!(
        get(&c, &format!("http://127.0.0.1:{p1}/")).await.status,
        200
    );
    assert!(refused(format!("127.0.0.1:{p2}").parse().unwrap()).await);
    one.set_serving(false).await.unwrap();
    assert!(refused(format!("127.0.0.1:{p1}").parse().unwrap()).await);
}

/// A connection the balancer accepted (and, on a TLS frontend, whose handshake finished) but
/// whose request had not arrived when the drain began: hyper alone closes such a connection
/// at once, unanswered. It is owed its request: the answer comes with `Connection: close`,
/// and over TLS the connection then ends with close_notify (a clean EOF for the client).
async fn drained_before_its_request(tls: bool) {
    let s = TestServer::start("s").await;
    let dir = std::env::temp_dir().join(format!("vrrplb-drain-{}-{tls}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut fe = frontend(vec![], Some("be"));
    let mut roots = rustls::RootCertStore::empty();
    if tls {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        roots.add(cert.der().clone()).unwrap();
        let pem = dir.join("site.pem");
        std::fs::write(&pem, format!("{}{}", cert.pem(), key.serialize_pem())).unwrap();
        fe.tls = Some(TlsConfig::new(vec![CertSource::Pem(pem)]));
    }
    let p = start(vec![fe], vec![backend("be", &[&s])]);
    let tcp = TcpStream::connect(p.addr).await.unwrap();
    let mut conn: Box<dyn Stream> = if tls {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut c = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        c.alpn_protocols = vec![b"http/1.1".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(c));
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        Box::new(connector.connect(name, tcp).await.expect("TLS handshake"))
    } else {
        Box::new(tcp)
    };
    eventually("connection accepted", Duration::from_secs(2), || {
        p.proxy.stats().connections == 1
    })
    .await;
    let proxy = Arc::new(p.proxy);
    let stopping = proxy.clone();
    let stop = tokio::spawn(async move { stopping.shutdown(Duration::from_secs(3)).await });
    // The listener is closed (and the drain asked) before the request leaves.
    let deadline = Instant::now() + Duration::from_secs(2);
    while !refused(p.addr).await {
        assert!(Instant::now() < deadline, "listener still open");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    conn.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), conn.read_to_end(&mut answer))
        .await
        .expect("the connection ends within the drain");
    let text = String::from_utf8_lossy(&answer).to_string();
    assert!(
        read.is_ok(),
        "not a clean end (close_notify over TLS): {read:?} after {text:?}"
    );
    assert!(text.starts_with("HTTP/1.1 200"), "{text:?}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text:?}"
    );
    stop.await.unwrap();
    assert_eq!(s.hits(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

#[tokio::test]
async fn drain_answers_a_plain_connection_that_had_not_sent_its_request() {
    drained_before_its_request(false).await;
}

#[tokio::test]
async fn drain_answers_a_tls_connection_after_its_handshake_and_closes_with_close_notify() {
    drained_before_its_request(true).await;
}
