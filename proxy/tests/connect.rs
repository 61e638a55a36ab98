//! CONNECT through an HTTP frontend (issue 11 §4), as HAProxy relays it in `mode http`: the
//! request is routed like any other (here by its authority), forwarded to a forward proxy
//! (tests/common: it answers `200 Connection established` and relays to the target, or 403
//! for `denied.test`), and a 2xx turns both connections into a tunnel idle-limited by
//! `timeouts.tunnel`; a non-2xx answer is relayed and the client connection stays usable.
//! Malformed CONNECTs get 400 and reach no server; over HTTP/2 a CONNECT tunnels on its
//! stream. Clients: curl (`-p -x`), raw sockets, the h2 crate. Loopback only; wall time
//! about 3 s.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::{echo_server, eventually, h2_tunnel_to_end, ForwardProxy, TestServer};
use proxy::config::{
    AccessRule, BackendConfig, FrontendConfig, HostMatch, ProxyConfig, RouteConfig, RuleAction,
    ServerConfig,
};
use proxy::Proxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(5);

/// The access log of the whole test binary (one global subscriber).
fn logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = Capture(buf.clone());
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .without_time()
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        buf
    })
    .clone()
}

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log_lines(frontend: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(&logs().lock().expect("lock")).into_owned();
    text.lines()
        .filter(|l| l.contains(&format!(" {frontend} ")))
        .map(str::to_owned)
        .collect()
}

/// A frontend `name`: CONNECT routes by its authority like any request by its Host, so
/// `other.test:443` goes to backend `other` (a plain web server) and every other authority to
/// the default backend `fwd` (the forward proxy).
fn start(
    name: &str,
    fwd: &ForwardProxy,
    other: &TestServer,
    tunnel: Option<Duration>,
) -> (Proxy, SocketAddr) {
    start_with(name, fwd, other, tunnel, Vec::new(), false)
}

fn start_with(
    name: &str,
    fwd: &ForwardProxy,
    other: &TestServer,
    tunnel: Option<Duration>,
    rules: Vec<AccessRule>,
    h2c: bool,
) -> (Proxy, SocketAddr) {
    let _ = logs();
    let mut fe = FrontendConfig::new(name, vec!["127.0.0.1:0".parse().expect("addr")]);
    fe.rules = rules;
    fe.default_backend = Some("fwd".into());
    fe.forwarded_for = true;
    // An HTTP/1 CONNECT relays socket to socket either way (an h2c listener serves a
    // connection whose first byte is not the HTTP/2 preface's as HTTP/1 directly); an HTTP/2
    // CONNECT (h2c) copies through hyper's upgraded stream.
    fe.h2c = h2c;
    let mut route = RouteConfig::new("other");
    route.host = Some(HostMatch::parse("other.test"));
    fe.routes = vec![route];
    let mut be = BackendConfig::new("fwd", vec![ServerConfig::new("squid", fwd.addr)]);
    be.timeouts.tunnel = tunnel;
    let others = BackendConfig::new("other", vec![other.server_config()]);
    let mut cfg = ProxyConfig::new(vec![fe], vec![be, others]);
    cfg.node = "test".into();
    let proxy = Proxy::start(cfg).expect("proxy starts");
    let addr = proxy.local_addrs(name)[0];
    (proxy, addr)
}

/// Reads a response head (and a Content-Length body) from `s`: (status, head, body).
async fn read_answer(s: &mut TcpStream) -> Option<(u16, String, String)> {
    let mut buf = Vec::new();
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut b = [0u8; 1];
        // One byte at a time: nothing past the head is taken from the tunnel.
        match tokio::time::timeout(WAIT, s.read(&mut b)).await {
            Ok(Ok(1)) => buf.push(b[0]),
            _ => return None,
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let status = head.get(9..12)?.parse().ok()?;
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    tokio::time::timeout(WAIT, s.read_exact(&mut body))
        .await
        .ok()?
        .ok()?;
    Some((status, head, String::from_utf8_lossy(&body).into_owned()))
}

fn connect_req(authority: &str) -> String {
    format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n")
}

async fn curl(args: Vec<String>) -> (bool, String, String) {
    tokio::task::spawn_blocking(move || {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10"])
            .args(&args)
            .output()
            .expect("curl runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .expect("curl task")
}

/// curl tunnels through vrrplb and the forward proxy to a web server; raw clients move a
/// 1 MiB pattern through an echo server and back while sending, then half-close; the access
/// log shows the tunnel's bytes.
#[tokio::test]
async fn curl_and_raw_clients_tunnel_through_connect() {
    let fwd = ForwardProxy::start().await;
    let web = TestServer::start("origin").await;
    let other = TestServer::start("other").await;
    let (_p, addr) = start("cxfe", &fwd, &other, None);

    let url = format!("http://{}/through-the-tunnel", web.addr);
    let (ok, body, err) = curl(vec![
        "-p".into(),
        "-x".into(),
        format!("http://{addr}"),
        url,
    ])
    .await;
    assert!(ok, "curl through CONNECT: {err}");
    assert!(body.contains("origin"), "answer of the target: {body}");
    assert_eq!(web.hits(), 1);
    let heads = fwd.heads();
    let head = heads.first().expect("the forward proxy saw the CONNECT");
    assert!(
        head.starts_with(&format!("CONNECT {} HTTP/1.1\r\n", web.addr)),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("x-forwarded-for: 127.0.0.1"),
        "{head}"
    );

    // Raw: bytes both ways, byte-exact, while sending; then half-close both ways.
    let (echo, _echo_task) = echo_server().await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(connect_req(&echo.to_string()).as_bytes())
        .await
        .expect("write");
    let (status, head, _) = read_answer(&mut s).await.expect("answer");
    assert_eq!(status, 200, "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("content-length"),
        "{head}"
    );
    let pattern: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i % 251) as u8 ^ (i >> 12) as u8)
        .collect();
    let (mut r, mut w) = s.into_split();
    let sent = pattern.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&sent).await.expect("send");
        w.shutdown().await.expect("half-close");
        w
    });
    let mut back = Vec::new();
    tokio::time::timeout(WAIT, r.read_to_end(&mut back))
        .await
        .expect("echo and close in time")
        .expect("read");
    let _w = writer.await.expect("writer");
    assert!(
        back == pattern,
        "{} bytes back of {}",
        back.len(),
        pattern.len()
    );

    eventually("the tunnel's log line", WAIT, || {
        log_lines("cxfe")
            .iter()
            .any(|l| l.contains(" 200 ") && l.contains("CONNECT"))
            && log_lines("cxfe").len() >= 2
    })
    .await;
    let lines = log_lines("cxfe");
    let line = lines
        .iter()
        .find(|l| l.contains(&format!("CONNECT {echo}")))
        .unwrap_or_else(|| panic!("no line for the raw tunnel: {lines:#?}"));
    assert!(line.contains(" fwd/squid "), "{line}");
    // The bytes sent to the client: the 200 head and the 1 MiB echoed.
    let bytes: u64 = line
        .split_whitespace()
        .skip_while(|f| *f != "200")
        .nth(1)
        .and_then(|b| b.parse().ok())
        .unwrap_or_else(|| panic!("bytes in {line}"));
    assert!(bytes > 1 << 20 && bytes < (1 << 20) + 200, "{line}");
    assert!(line.contains(" ---- "), "{line}");
}

/// Quiet for `timeouts.tunnel` (300 ms), the tunnel is closed; kept busy, it is not.
#[tokio::test]
async fn an_idle_tunnel_is_closed_by_the_tunnel_timeout() {
    let fwd = ForwardProxy::start().await;
    let other = TestServer::start("other").await;
    let (_p, addr) = start("cxidle", &fwd, &other, Some(Duration::from_millis(300)));
    let (echo, _echo_task) = echo_server().await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(connect_req(&echo.to_string()).as_bytes())
        .await
        .expect("write");
    assert_eq!(read_answer(&mut s).await.map(|a| a.0), Some(200));
    // Busy: a byte every 100 ms for 900 ms, each echoed.
    let busy = Instant::now();
    let mut last = Instant::now();
    while busy.elapsed() < Duration::from_millis(900) {
        s.write_all(b"x").await.expect("tunnel open while busy");
        let mut b = [0u8; 1];
        tokio::time::timeout(WAIT, s.read_exact(&mut b))
            .await
            .expect("echo in time")
            .expect("echo");
        last = Instant::now();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Quiet: closed about 300 ms after the last byte.
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut rest))
        .await
        .expect("closed in time")
        .ok();
    let after = last.elapsed();
    assert!(rest.is_empty());
    assert!(
        after >= Duration::from_millis(250) && after < Duration::from_secs(3),
        "closed {after:?} after the last byte"
    );
}

/// A 403 from the forward proxy is relayed with its body and the client connection serves
/// the next CONNECT, which tunnels; authority `other.test:443` is routed to backend `other`.
#[tokio::test]
async fn a_refused_connect_is_relayed_and_the_connection_stays_usable() {
    let fwd = ForwardProxy::start().await;
    let other = TestServer::start("other").await;
    let (_p, addr) = start("cxdeny", &fwd, &other, None);
    let (echo, _echo_task) = echo_server().await;

    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(connect_req("denied.test:443").as_bytes())
        .await
        .expect("write");
    let (status, head, body) = read_answer(&mut s).await.expect("answer");
    assert_eq!((status, body.as_str()), (403, "denied"), "{head}");
    s.write_all(connect_req(&echo.to_string()).as_bytes())
        .await
        .expect("write");
    let (status, head, _) = read_answer(&mut s).await.expect("second answer");
    assert_eq!(status, 200, "{head}");
    s.write_all(b"ping").await.expect("write");
    let mut b = [0u8; 4];
    tokio::time::timeout(WAIT, s.read_exact(&mut b))
        .await
        .expect("in time")
        .expect("read");
    assert_eq!(&b, b"ping");

    // curl reports the refusal as such.
    let (ok, _, err) = curl(vec![
        "-p".into(),
        "-x".into(),
        format!("http://{addr}"),
        "http://denied.test:443/".into(),
    ])
    .await;
    assert!(!ok && err.contains("403"), "{err}");

    // Routed by authority: `other` is a web server, which answers the CONNECT itself.
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(connect_req("other.test:443").as_bytes())
        .await
        .expect("write");
    read_answer(&mut s).await.expect("answer");
    assert_eq!(other.hits(), 1);
    let heads = fwd.heads();
    assert!(
        !heads.iter().any(|h| h.contains("other.test")),
        "{heads:#?}"
    );
}

/// No authority, no port, a path, a scheme, a body: 400 `PR--` with the reason logged, and no
/// server sees them.
#[tokio::test]
async fn malformed_connects_get_400() {
    let fwd = ForwardProxy::start().await;
    let other = TestServer::start("other").await;
    let (p, addr) = start("cxbad", &fwd, &other, None);
    let bad: [&[u8]; 6] = [
        b"CONNECT / HTTP/1.1\r\nHost: a.test:443\r\n\r\n",
        b"CONNECT a.test HTTP/1.1\r\nHost: a.test\r\n\r\n",
        b"CONNECT a.test:443/x HTTP/1.1\r\nHost: a.test:443\r\n\r\n",
        b"CONNECT http://a.test:443/ HTTP/1.1\r\nHost: a.test:443\r\n\r\n",
        b"CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\nContent-Length: 5\r\n\r\nhello",
        b"CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ];
    for req in bad {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(req).await.expect("write");
        let answer = read_answer(&mut s).await;
        assert_eq!(
            answer.as_ref().map(|a| a.0),
            Some(400),
            "{}: {answer:?}",
            String::from_utf8_lossy(req)
        );
    }
    assert!(fwd.heads().is_empty(), "{:#?}", fwd.heads());
    assert_eq!(other.hits(), 0);
    eventually("six 400 lines", WAIT, || {
        log_lines("cxbad")
            .iter()
            .filter(|l| l.contains(" 400 "))
            .count()
            >= 6
    })
    .await;
    let text = String::from_utf8_lossy(&logs().lock().expect("lock")).into_owned();
    assert!(text.contains("CONNECT target is not host:port"), "{text}");
    assert!(text.contains("CONNECT with a body"), "{text}");
    let stats = p.stats();
    let fe = stats
        .frontends
        .iter()
        .find(|f| f.name == "cxbad")
        .expect("frontend");
    let counted = fe.counters.http_responses;
    // [1xx, 2xx, 3xx, 4xx, 5xx, other]; hyper refuses the target with a path itself (its
    // 400 is logged, not counted as a response).
    assert!(counted[3] >= 5, "4xx counted: {counted:?}");

    assert!(fwd.heads().is_empty());
}

/// `rules` deny by method CONNECT (no switch of its own, as in HAProxy): 403 from vrrplb, the
/// forward proxy sees nothing, other methods pass.
#[tokio::test]
async fn a_rule_on_method_connect_denies_it() {
    let fwd = ForwardProxy::start().await;
    let other = TestServer::start("other").await;
    let deny = AccessRule {
        src: Vec::new(),
        methods: vec!["CONNECT".into()],
        path_prefix: None,
        action: RuleAction::Deny(403),
    };
    let (_p, addr) = start_with("cxrule", &fwd, &other, None, vec![deny], false);
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(connect_req("other.test:443").as_bytes())
        .await
        .expect("write");
    assert_eq!(read_answer(&mut s).await.map(|a| a.0), Some(403));
    s.write_all(b"GET / HTTP/1.1\r\nHost: other.test\r\n\r\n")
        .await
        .expect("write");
    assert_eq!(read_answer(&mut s).await.map(|a| a.0), Some(200));
    assert_eq!(other.hits(), 1);
    assert!(fwd.heads().is_empty());
}

/// CONNECT over HTTP/2 (RFC 9113 §8.5, prior knowledge, the h2 crate as client): the 200
/// opens a tunnel on that stream (bytes echoed, END_STREAM passed on as half-close and the
/// server's close back as END_STREAM) while other streams of the connection are served: a
/// refused CONNECT (403 relayed) and a plain GET.
#[tokio::test]
async fn connect_over_http2_tunnels_on_its_stream() {
    let fwd = ForwardProxy::start().await;
    let other = TestServer::start("other").await;
    let (_p, addr) = start_with("cxh2", &fwd, &other, None, Vec::new(), true);
    let (echo, _echo_task) = echo_server().await;
    let (h2, conn, mut send, tunnel) = h2_connect(addr, echo).await;

    // Other streams meanwhile.
    let mut h2 = h2.ready().await.expect("ready");
    let req = http::Request::connect("denied.test:443")
        .body(())
        .expect("request");
    let (refused, _s) = h2.send_request(req, false).expect("send CONNECT");
    let refused = tokio::time::timeout(WAIT, refused)
        .await
        .expect("in time")
        .expect("answer");
    assert_eq!(refused.status(), 403);
    let mut h2 = h2.ready().await.expect("ready");
    let req = http::Request::get("http://other.test/plain")
        .body(())
        .expect("request");
    let (plain, _s) = h2.send_request(req, true).expect("send GET");
    let plain = tokio::time::timeout(WAIT, plain)
        .await
        .expect("in time")
        .expect("answer");
    assert_eq!(plain.status(), 200);
    assert_eq!(other.hits(), 1);

    let pattern: Vec<u8> = (0..64 * 1024u32).map(|i| (i % 253) as u8).collect();
    send.send_data(bytes::Bytes::from(pattern.clone()), true)
        .expect("send data and END_STREAM");
    let back = h2_tunnel_to_end(tunnel).await;
    assert!(
        back == pattern,
        "{} bytes back of {}",
        back.len(),
        pattern.len()
    );
    conn.abort();
    let heads = fwd.heads();
    assert_eq!(heads.len(), 2, "{heads:#?}");
    assert!(
        heads[0].starts_with(&format!("CONNECT {echo} HTTP/1.1")),
        "{heads:#?}"
    );
}

/// An h2c connection to `addr` and a CONNECT to `target` on its first stream, answered 200
/// with no Content-Length: the client handle, the connection's task, and the tunnel's two
/// directions.
async fn h2_connect(
    addr: SocketAddr,
    target: SocketAddr,
) -> (
    h2::client::SendRequest<bytes::Bytes>,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
    h2::SendStream<bytes::Bytes>,
    h2::RecvStream,
) {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (h2, conn) = h2::client::handshake(tcp).await.expect("h2 handshake");
    let conn = tokio::spawn(conn);
    let mut h2 = h2.ready().await.expect("ready");
    let req = http::Request::connect(target.to_string())
        .body(())
        .expect("request");
    let (resp, send) = h2.send_request(req, false).expect("send CONNECT");
    let resp = tokio::time::timeout(WAIT, resp)
        .await
        .expect("in time")
        .expect("h2 answer");
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("content-length").is_none());
    (h2, conn, send, resp.into_body())
}

/// 8 MiB each way at once, byte-exact, on both relay paths: socket to socket with splice(2)
/// (HTTP/1 CONNECT, on an HTTP/1-only frontend and on an h2c one) and through hyper's
/// upgraded stream (HTTP/2 CONNECT on a stream of an h2c connection).
#[tokio::test]
async fn bulk_transfers_are_byte_exact_on_both_relay_paths() {
    let fwd = ForwardProxy::start().await;
    let other = TestServer::start("other").await;
    let (echo, _echo_task) = echo_server().await;
    let pattern: Vec<u8> = (0..8u32 << 20)
        .map(|i| (i % 251) as u8 ^ (i >> 13) as u8)
        .collect();
    {
        let (_p, addr) = start_with("cxbulkh2", &fwd, &other, None, Vec::new(), true);
        let (_h2, conn, mut send, tunnel) = h2_connect(addr, echo).await;
        // h2 queues what its flow-control window does not take yet.
        send.send_data(bytes::Bytes::from(pattern.clone()), true)
            .expect("send data and END_STREAM");
        let back = h2_tunnel_to_end(tunnel).await;
        assert!(
            back == pattern,
            "h2: {} bytes back of {}",
            back.len(),
            pattern.len()
        );
        conn.abort();
    }
    for h2c in [false, true] {
        let name = if h2c { "cxbulkh2c" } else { "cxbulk" };
        let (_p, addr) = start_with(name, &fwd, &other, None, Vec::new(), h2c);
        let mut s = TcpStream::connect(addr).await.expect("connect");
        // The first tunnel bytes travel with the CONNECT head.
        let mut first = connect_req(&echo.to_string()).into_bytes();
        first.extend_from_slice(b"early");
        s.write_all(&first).await.expect("write");
        let (status, head, _) = read_answer(&mut s).await.expect("answer");
        assert_eq!(status, 200, "{head}");
        let pattern = [&b"early"[..], &pattern].concat();
        let (mut r, mut w) = s.into_split();
        let rest = pattern[5..].to_vec();
        let writer = tokio::spawn(async move {
            w.write_all(&rest).await.expect("send");
            w.shutdown().await.expect("half-close");
            w
        });
        let mut back = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), r.read_to_end(&mut back))
            .await
            .expect("echo and close in time")
            .expect("read");
        let _w = writer.await.expect("writer");
        assert!(
            back == pattern,
            "{name}: {} bytes back of {}",
            back.len(),
            pattern.len()
        );
    }
}
