//! tcp mode end to end on loopback (lb.md §11): byte tunnels with half-close, server
//! selection, retries, PROXY headers both ways, SNI routing, timeouts, resets.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{eventually, free_port};
use proxy::config::{
    BackendConfig, Balance, CheckKind, FrontendConfig, HealthCheckConfig, HostMatch, Mode,
    ProxyConfig, ProxyVersion, RouteConfig, ServerConfig,
};
use proxy::tcp::clienthello::build;
use proxy::tcp::proxy_header::{self, Parse, ProxyHeader};
use proxy::Proxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const WAIT: Duration = Duration::from_secs(5);

/// What a test server does with one accepted connection.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Writes its name, then reads to end of stream and answers `<name> got <n>: <first 64
    /// bytes>`, then closes (proves the half-close reached it and the answer still flows).
    NameThenEcho,
    /// Parses a PROXY header, writes `<name> <src> <dst>` and closes.
    ProxyPeer,
    /// Writes its name and 4 KiB, then resets the connection.
    ResetMidStream,
}

struct Server {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn server(name: &'static str, behaviour: Behaviour) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let task = tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(handle(name, s, behaviour));
        }
    });
    Server {
        addr,
        accepted,
        task,
    }
}

async fn handle(name: &str, mut s: TcpStream, behaviour: Behaviour) {
    match behaviour {
        Behaviour::NameThenEcho => {
            let _ = s.write_all(format!("{name}\n").as_bytes()).await;
            let mut got = Vec::new();
            if s.read_to_end(&mut got).await.is_err() {
                return;
            }
            let head = String::from_utf8_lossy(&got[..got.len().min(64)]).into_owned();
            let _ = s
                .write_all(format!("{name} got {}: {head}", got.len()).as_bytes())
                .await;
        }
        Behaviour::ProxyPeer => {
            let mut buf = Vec::new();
            loop {
                let mut chunk = [0u8; 512];
                let Ok(n) = s.read(&mut chunk).await else {
                    return;
                };
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
                match proxy_header::parse(&buf) {
                    Ok(Parse::NeedMore) => continue,
                    Ok(Parse::Done {
                        header: ProxyHeader::Tcp { src, dst },
                        len,
                    }) => {
                        let rest = String::from_utf8_lossy(&buf[len..]).into_owned();
                        let _ = s
                            .write_all(format!("{name} {src} {dst} {rest}").as_bytes())
                            .await;
                        return;
                    }
                    other => {
                        let _ = s.write_all(format!("bad {other:?}").as_bytes()).await;
                        return;
                    }
                }
            }
        }
        Behaviour::ResetMidStream => {
            let _ = s.write_all(format!("{name}\n").as_bytes()).await;
            let _ = s.write_all(&[b'x'; 4096]).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
            drop(s);
        }
    }
}

fn tcp_frontend(default: &str) -> FrontendConfig {
    let mut f = FrontendConfig::new("tcpfe", vec!["127.0.0.1:0".parse().unwrap()]);
    f.mode = Mode::Tcp;
    f.default_backend = Some(default.into());
    f
}

fn tcp_backend(name: &str, servers: &[SocketAddr]) -> BackendConfig {
    let servers = servers
        .iter()
        .enumerate()
        .map(|(i, a)| ServerConfig::new(format!("s{i}"), *a))
        .collect();
    let mut b = BackendConfig::new(name, servers);
    b.mode = Mode::Tcp;
    b
}

fn start(frontends: Vec<FrontendConfig>, backends: Vec<BackendConfig>) -> (Proxy, SocketAddr) {
    let mut cfg = ProxyConfig::new(frontends, backends);
    cfg.node = "test".into();
    let proxy = Proxy::start(cfg).expect("proxy starts");
    let addr = proxy.local_addrs("tcpfe")[0];
    (proxy, addr)
}

/// Connects, sends `data`, half-closes, and reads everything until the proxy closes.
async fn exchange(addr: SocketAddr, data: &[u8]) -> String {
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(data).await.unwrap();
    c.shutdown().await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, c.read_to_end(&mut out))
        .await
        .expect("the proxy ends the connection")
        .expect("clean end of stream");
    String::from_utf8_lossy(&out).into_owned()
}

/// The name a NameThenEcho server greets with.
async fn greeting(addr: SocketAddr) -> (TcpStream, String) {
    let mut c = TcpStream::connect(addr).await.unwrap();
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while tokio::time::timeout(WAIT, c.read_exact(&mut b))
        .await
        .is_ok_and(|r| r.is_ok())
    {
        if b[0] == b'\n' {
            break;
        }
        line.push(b[0]);
    }
    (c, String::from_utf8_lossy(&line).into_owned())
}

#[tokio::test]
async fn bytes_flow_both_ways_and_half_close_is_propagated() {
    let a = server("a", Behaviour::NameThenEcho).await;
    let (_p, addr) = start(vec![tcp_frontend("be")], vec![tcp_backend("be", &[a.addr])]);
    // 1 MB up; the server answers only after it saw our end of stream.
    let payload: Vec<u8> = (0..1_000_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let out = exchange(addr, &payload).await;
    assert_eq!(
        out,
        format!(
            "a\na got 1000000: {}",
            String::from_utf8_lossy(&payload[..64])
        )
    );
}

#[tokio::test]
async fn roundrobin_leastconn_and_source_spread() {
    let a = server("a", Behaviour::NameThenEcho).await;
    let b = server("b", Behaviour::NameThenEcho).await;
    let rr = tcp_backend("rr", &[a.addr, b.addr]);
    let mut lc = tcp_backend("lc", &[a.addr, b.addr]);
    lc.balance = Balance::LeastConn;
    let mut src = tcp_backend("src", &[a.addr, b.addr]);
    src.balance = Balance::Source;
    let mut fe_lc = tcp_frontend("lc");
    fe_lc.name = "lc".into();
    let mut fe_src = tcp_frontend("src");
    fe_src.name = "src".into();
    let (p, addr) = start(vec![tcp_frontend("rr"), fe_lc, fe_src], vec![rr, lc, src]);

    let mut seen: HashMap<String, usize> = HashMap::new();
    for _ in 0..10 {
        let (c, name) = greeting(addr).await;
        drop(c);
        *seen.entry(name).or_default() += 1;
    }
    assert_eq!(seen.get("a"), Some(&5), "{seen:?}");
    assert_eq!(seen.get("b"), Some(&5), "{seen:?}");

    // leastconn: while one session is open on a server, new ones go to the other.
    let lc_addr = p.local_addrs("lc")[0];
    let (held, busy) = greeting(lc_addr).await;
    for _ in 0..4 {
        let (c, name) = greeting(lc_addr).await;
        assert_ne!(name, busy, "leastconn picked the busy server");
        drop(c);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    drop(held);

    // source: one client address always lands on the same server.
    let src_addr = p.local_addrs("src")[0];
    let (c, first) = greeting(src_addr).await;
    drop(c);
    for _ in 0..5 {
        let (c, name) = greeting(src_addr).await;
        assert_eq!(name, first);
        drop(c);
    }
}

#[tokio::test]
async fn retries_and_redispatch_reach_a_live_server() {
    let dead: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let live = server("live", Behaviour::NameThenEcho).await;
    let mut be = tcp_backend("be", &[dead, live.addr]);
    be.retries = 1;
    be.redispatch = true;
    let (_p, addr) = start(vec![tcp_frontend("be")], vec![be]);
    for _ in 0..4 {
        let out = exchange(addr, b"hi").await;
        assert_eq!(out, "live\nlive got 2: hi");
    }
}

#[tokio::test]
async fn no_usable_server_closes_without_a_byte() {
    let dead: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut be = tcp_backend("be", &[dead]);
    be.retries = 2;
    be.timeouts.connect = Duration::from_millis(200);
    let (_p, addr) = start(vec![tcp_frontend("be")], vec![be]);
    let started = Instant::now();
    let mut c = TcpStream::connect(addr).await.unwrap();
    let mut out = Vec::new();
    let r = tokio::time::timeout(WAIT, c.read_to_end(&mut out)).await;
    assert!(r.is_ok(), "closed");
    assert!(out.is_empty(), "got {out:?}");
    // Two retries on the same server wait min(connect, 1 s) = 200 ms each.
    assert!(started.elapsed() >= Duration::from_millis(400));
}

#[tokio::test]
async fn send_proxy_v1_and_v2_carry_the_client_and_accept_proxy_reads_it() {
    let peer = server("peer", Behaviour::ProxyPeer).await;
    let mut v1 = tcp_backend("v1", &[peer.addr]);
    v1.send_proxy = Some(ProxyVersion::V1);
    let mut v2 = tcp_backend("v2", &[peer.addr]);
    v2.send_proxy = Some(ProxyVersion::V2);
    let mut fe_v2 = tcp_frontend("v2");
    fe_v2.name = "fe_v2".into();
    // A frontend behind another balancer: it reads a PROXY header, then sends v2 onward.
    let mut fe_pp = tcp_frontend("v2");
    fe_pp.name = "fe_pp".into();
    fe_pp.accept_proxy = true;
    let (p, addr) = start(vec![tcp_frontend("v1"), fe_v2, fe_pp], vec![v1, v2]);

    for (fe, a) in [("tcpfe", addr), ("fe_v2", p.local_addrs("fe_v2")[0])] {
        let mut c = TcpStream::connect(a).await.unwrap();
        let me = c.local_addr().unwrap();
        c.write_all(b"data").await.unwrap();
        let mut out = String::new();
        tokio::time::timeout(WAIT, c.read_to_string(&mut out))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(out, format!("peer {me} {a} data"), "{fe}");
    }

    let pp = p.local_addrs("fe_pp")[0];
    for header in [
        b"PROXY TCP4 203.0.113.9 198.51.100.10 40000 443\r\n".to_vec(),
        proxy_header::encode_v2(
            "203.0.113.9:40000".parse().unwrap(),
            "198.51.100.10:443".parse().unwrap(),
        ),
    ] {
        let mut c = TcpStream::connect(pp).await.unwrap();
        // The header in two pieces, the client's bytes right behind it.
        c.write_all(&header[..10]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        c.write_all(&[&header[10..], b"after"].concat())
            .await
            .unwrap();
        let mut out = String::new();
        tokio::time::timeout(WAIT, c.read_to_string(&mut out))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(out, "peer 203.0.113.9:40000 198.51.100.10:443 after");
    }

    // Missing, malformed or truncated headers close the connection before any server.
    let before = peer.accepted.load(Ordering::SeqCst);
    for bad in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        b"PROXY TCP4 203.0.113.999 198.51.100.10 1 2\r\n",
        b"PROXY TCP4 203.0.113.9",
    ] {
        let mut c = TcpStream::connect(pp).await.unwrap();
        c.write_all(bad).await.unwrap();
        c.shutdown().await.unwrap();
        let mut out = Vec::new();
        let r = tokio::time::timeout(WAIT, c.read_to_end(&mut out)).await;
        assert!(r.is_ok(), "closed");
        assert!(out.is_empty());
    }
    assert_eq!(peer.accepted.load(Ordering::SeqCst), before);
}

#[tokio::test]
async fn sni_routes_pick_the_backend_and_every_byte_is_forwarded() {
    let app = server("app", Behaviour::NameThenEcho).await;
    let other = server("other", Behaviour::NameThenEcho).await;
    let mut fe = tcp_frontend("other");
    fe.routes = vec![{
        let mut r = RouteConfig::new("app");
        r.sni = Some(HostMatch::parse("*.app.test"));
        r
    }];
    fe.inspect_timeout = Duration::from_millis(300);
    let (_p, addr) = start(
        vec![fe],
        vec![
            tcp_backend("app", &[app.addr]),
            tcp_backend("other", &[other.addr]),
        ],
    );
    // A 6 KB hello in 300-byte records, sent in 700-byte segments 20 ms apart.
    let hello = build::records(&build::client_hello(Some("www.App.test"), 6000), 300);
    let mut c = TcpStream::connect(addr).await.unwrap();
    for piece in hello.chunks(700) {
        c.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.write_all(b"TAIL").await.unwrap();
    c.shutdown().await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, c.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let out = String::from_utf8_lossy(&out);
    assert!(
        out.starts_with(&format!("app\napp got {}: ", hello.len() + 4)),
        "{out}"
    );

    // No SNI, not TLS, another name: the default backend, bytes unchanged.
    let no_sni = build::records(&build::client_hello(None, 100), 16384);
    let other_name = build::records(&build::client_hello(Some("a.b.app.test"), 0), 16384);
    for (wire, what) in [
        (no_sni, "no sni"),
        (b"SSH-2.0-x\r\n".to_vec(), "not tls"),
        (other_name, "two labels under the wildcard"),
    ] {
        let out = exchange(addr, &wire).await;
        assert!(
            out.starts_with(&format!("other\nother got {}: ", wire.len())),
            "{what}: {out}"
        );
    }

    // A client that never sends: after the inspection deadline it goes to the default
    // backend (whose greeting arrives).
    let started = Instant::now();
    let (c, name) = greeting(addr).await;
    assert_eq!(name, "other");
    assert!(started.elapsed() >= Duration::from_millis(250));
    drop(c);

    // A hello that lies about a length: closed, no server reached.
    let before = app.accepted.load(Ordering::SeqCst) + other.accepted.load(Ordering::SeqCst);
    let mut bad = build::client_hello(Some("x.app.test"), 0);
    bad[4 + 34] = 200; // session id length beyond the body
    let out = exchange(addr, &build::records(&bad, 16384)).await;
    assert_eq!(out, "");
    let after = app.accepted.load(Ordering::SeqCst) + other.accepted.load(Ordering::SeqCst);
    assert_eq!(before, after);
}

#[tokio::test]
async fn idle_tunnels_expire_and_server_resets_end_the_session() {
    let a = server("a", Behaviour::NameThenEcho).await;
    let r = server("r", Behaviour::ResetMidStream).await;
    let mut idle = tcp_backend("idle", &[a.addr]);
    idle.timeouts.tunnel = Some(Duration::from_millis(300));
    let mut fe_reset = tcp_frontend("reset");
    fe_reset.name = "reset".into();
    let (p, addr) = start(
        vec![tcp_frontend("idle"), fe_reset],
        vec![idle, tcp_backend("reset", &[r.addr])],
    );
    let started = Instant::now();
    let (mut c, name) = greeting(addr).await;
    assert_eq!(name, "a");
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, c.read_to_end(&mut rest))
        .await
        .expect("the idle tunnel is closed")
        .unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(280) && took < Duration::from_secs(2),
        "{took:?}"
    );

    let (mut c, name) = greeting(p.local_addrs("reset")[0]).await;
    assert_eq!(name, "r");
    let mut rest = Vec::new();
    let r = tokio::time::timeout(WAIT, c.read_to_end(&mut rest)).await;
    assert!(r.is_ok(), "the reset reached the client");
    assert!(rest.len() <= 4096);
}

#[tokio::test]
async fn marked_down_server_has_its_sessions_shut_down() {
    let a = server("a", Behaviour::NameThenEcho).await;
    // The check goes to another port (check_port), which we close to mark the server DOWN.
    let check = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let check_port = check.local_addr().unwrap().port();
    let mut be = tcp_backend("be", &[a.addr]);
    be.servers[0].check_port = Some(check_port);
    be.shutdown_sessions_on_down = true;
    be.health_check = Some(HealthCheckConfig {
        kind: CheckKind::Tcp,
        interval: Duration::from_millis(100),
        timeout: Duration::from_millis(100),
        rise: 1,
        fall: 1,
        ..HealthCheckConfig::default()
    });
    let (p, addr) = start(vec![tcp_frontend("be")], vec![be]);
    let (mut c, name) = greeting(addr).await;
    assert_eq!(name, "a");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(p.stats().backends[0].servers[0].status, "UP");
    drop(check);
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, c.read_to_end(&mut rest))
        .await
        .expect("the session is cut when the server goes DOWN")
        .ok();
    eventually("server DOWN", WAIT, || {
        p.stats().backends[0].servers[0].status == "DOWN"
    })
    .await;
}

/// Bulk transfers (spliced through a pipe once a read fills the 64 KiB buffer) arrive byte
/// for byte both ways, and half-close still ends them: 24 MiB of a non-repeating pattern go
/// up to an echo server and come back while being sent.
#[tokio::test]
async fn bulk_transfer_is_byte_exact_both_ways() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo_addr = listener.local_addr().unwrap();
    let echo = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let (mut r, mut w) = s.split();
        tokio::io::copy(&mut r, &mut w).await.unwrap();
        w.shutdown().await.unwrap();
    });
    let (_proxy, addr) = start(
        vec![tcp_frontend("echo")],
        vec![tcp_backend("echo", &[echo_addr])],
    );
    let data: Vec<u8> = (0..24u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let c = TcpStream::connect(addr).await.unwrap();
    let (mut r, mut w) = c.into_split();
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&sent).await.unwrap();
        w.shutdown().await.unwrap();
    });
    let mut back = Vec::with_capacity(data.len());
    tokio::time::timeout(Duration::from_secs(30), r.read_to_end(&mut back))
        .await
        .expect("echo in time")
        .unwrap();
    writer.await.unwrap();
    echo.await.unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "the echoed bytes differ");
}
