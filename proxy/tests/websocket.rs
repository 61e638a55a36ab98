//! WebSocket through an HTTP frontend (issue 11 §4, lb.md §8) on loopback, with a real
//! WebSocket implementation on both ends (tokio-tungstenite: handshake keys, masking,
//! framing): the 101 turns both connections into a tunnel with half-close passed on, idle
//! limited by `timeouts.tunnel`, and cut when a check marks the server DOWN with
//! `on_marked_down: shutdown_sessions`.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::eventually;
use futures_util::{SinkExt, StreamExt};
use proxy::config::{BackendConfig, FrontendConfig, ProxyConfig, ServerConfig};
use proxy::Proxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(5);

/// A WebSocket server: greets each connection with `hello from <name>` and echoes every
/// message. `/health` on the same port answers 200 while `healthy` (plain HTTP).
struct EchoServer {
    addr: SocketAddr,
    upgrades: Arc<AtomicUsize>,
    healthy: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn echo_server(name: &'static str) -> EchoServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let upgrades = Arc::new(AtomicUsize::new(0));
    let healthy = Arc::new(AtomicBool::new(true));
    let (u, h) = (upgrades.clone(), healthy.clone());
    let task = tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let (u, h) = (u.clone(), h.clone());
            tokio::spawn(async move {
                let mut peek = [0u8; 16];
                let Ok(n) = s.peek(&mut peek).await else {
                    return;
                };
                if peek[..n].starts_with(b"GET /health") {
                    return health(s, &h).await;
                }
                let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else {
                    return;
                };
                u.fetch_add(1, Ordering::SeqCst);
                if ws
                    .send(Message::text(format!("hello from {name}")))
                    .await
                    .is_err()
                {
                    return;
                }
                while let Some(Ok(m)) = ws.next().await {
                    if (m.is_text() || m.is_binary()) && ws.send(m).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    EchoServer {
        addr,
        upgrades,
        healthy,
        task,
    }
}

/// Keep-alive health answers: 200 while healthy, else 503.
async fn health(mut s: TcpStream, healthy: &AtomicBool) {
    let mut buf = Vec::new();
    loop {
        let mut chunk = [0u8; 1024];
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.drain(..end + 4);
            let status = if healthy.load(Ordering::SeqCst) {
                "200 OK"
            } else {
                "503 Service Unavailable"
            };
            let resp = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
            if s.write_all(resp.as_bytes()).await.is_err() {
                return;
            }
        }
    }
}

fn start(be: BackendConfig) -> (Proxy, SocketAddr) {
    let mut fe = FrontendConfig::new("www", vec!["127.0.0.1:0".parse().unwrap()]);
    fe.default_backend = Some("ws".into());
    fe.forwarded_for = true;
    let mut cfg = ProxyConfig::new(vec![fe], vec![be]);
    cfg.node = "test".into();
    let proxy = Proxy::start(cfg).expect("proxy starts");
    let addr = proxy.local_addrs("www")[0];
    (proxy, addr)
}

fn backend(servers: &[&EchoServer]) -> BackendConfig {
    let servers = servers
        .iter()
        .enumerate()
        .map(|(i, s)| ServerConfig::new(format!("s{i}"), s.addr))
        .collect();
    BackendConfig::new("ws", servers)
}

type Client = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn connect(addr: SocketAddr) -> Client {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (ws, resp) = tokio::time::timeout(
        WAIT,
        tokio_tungstenite::client_async("ws://www.example.test/chat", tcp),
    )
    .await
    .expect("handshake in time")
    .expect("WebSocket handshake through the balancer");
    assert_eq!(resp.status(), 101);
    ws
}

async fn next_text(ws: &mut Client) -> Option<String> {
    match tokio::time::timeout(WAIT, ws.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => Some(t.to_string()),
        _ => None,
    }
}

/// The handshake goes through (the client checks Sec-WebSocket-Accept), the server's
/// greeting sent right after its 101 arrives, text and a 256 KiB binary message come back
/// intact, and a close handshake ends it; plain requests on other connections still work.
#[tokio::test]
async fn websocket_messages_flow_both_ways() {
    let s = echo_server("a").await;
    let (_proxy, addr) = start(backend(&[&s]));
    let mut ws = connect(addr).await;
    assert_eq!(next_text(&mut ws).await.as_deref(), Some("hello from a"));
    for i in 0..5 {
        ws.send(Message::text(format!("ping {i}"))).await.unwrap();
        assert_eq!(next_text(&mut ws).await, Some(format!("ping {i}")));
    }
    let big: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
    ws.send(Message::binary(big.clone())).await.unwrap();
    match tokio::time::timeout(WAIT, ws.next()).await {
        Ok(Some(Ok(Message::Binary(b)))) => assert!(b[..] == big[..], "binary echo differs"),
        other => panic!("no binary echo: {other:?}"),
    }
    ws.close(None).await.unwrap();
    let end =
        tokio::time::timeout(WAIT, async { while let Some(Ok(_)) = ws.next().await {} }).await;
    assert!(end.is_ok(), "close handshake did not end the tunnel");
    assert_eq!(s.upgrades.load(Ordering::SeqCst), 1);
}

/// A raw server that completes the upgrade by hand, then reads to end of stream and
/// answers how many bytes it got: the client's half-close must reach it through the tunnel
/// and the answer still come back.
#[tokio::test]
async fn half_close_reaches_the_server_and_its_answer_returns() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server_addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        let head = loop {
            let mut chunk = [0u8; 1024];
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed before the request head");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                buf.drain(..end + 4);
                break head;
            }
        };
        let key = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("sec-websocket-key")
                    .then(|| v.trim().to_string())
            })
            .expect("Sec-WebSocket-Key forwarded");
        let accept = derive_accept_key(key.as_bytes());
        s.write_all(format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        s.read_to_end(&mut buf).await.unwrap();
        s.write_all(format!("got {}", buf.len()).as_bytes())
            .await
            .unwrap();
        head
    });
    let be = BackendConfig::new("ws", vec![ServerConfig::new("raw", server_addr)]);
    let (_proxy, addr) = start(be);
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"GET /chat HTTP/1.1\r\nHost: www.example.test\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let head = tokio::time::timeout(WAIT, async {
        loop {
            let mut chunk = [0u8; 1024];
            let n = c.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed before the 101");
            got.extend_from_slice(&chunk[..n]);
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                break String::from_utf8_lossy(&got[..end]).into_owned();
            }
        }
    })
    .await
    .expect("101 in time");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("upgrade: websocket"), "{head}");
    assert!(
        lower.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    c.write_all(b"12345").await.unwrap();
    c.shutdown().await.unwrap();
    let answer = common::read_until_close(&mut c, WAIT).await;
    assert_eq!(answer, "got 5");
    let seen = server.await.unwrap().to_ascii_lowercase();
    assert!(seen.contains("connection: upgrade"), "{seen}");
    assert!(seen.contains("upgrade: websocket"), "{seen}");
    assert!(seen.contains("x-forwarded-for: 127.0.0.1"), "{seen}");
}

/// `timeouts.tunnel` limits inactivity once upgraded: traffic every 100 ms keeps a 400 ms
/// tunnel open past 800 ms; silence closes it after ~400 ms (not the 5 s client/server
/// timeouts).
#[tokio::test]
async fn idle_tunnel_is_closed_by_the_tunnel_timeout() {
    let s = echo_server("a").await;
    let mut be = backend(&[&s]);
    be.timeouts.tunnel = Some(Duration::from_millis(400));
    be.timeouts.server = Duration::from_secs(5);
    let (_proxy, addr) = start(be);
    let mut ws = connect(addr).await;
    assert_eq!(next_text(&mut ws).await.as_deref(), Some("hello from a"));
    let busy = Instant::now();
    let mut i = 0;
    let mut quiet = Instant::now();
    while busy.elapsed() < Duration::from_millis(800) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        ws.send(Message::text(format!("tick {i}"))).await.unwrap();
        assert_eq!(next_text(&mut ws).await, Some(format!("tick {i}")));
        // The last byte through the tunnel.
        quiet = Instant::now();
        i += 1;
    }
    let end = tokio::time::timeout(WAIT, ws.next()).await;
    let waited = quiet.elapsed();
    assert!(
        matches!(end, Ok(None) | Ok(Some(Err(_)))),
        "expected the tunnel to close, got {end:?}"
    );
    assert!(
        waited >= Duration::from_millis(390) && waited < Duration::from_secs(3),
        "closed after {waited:?}"
    );
}

/// With `on_marked_down: shutdown_sessions`, a check marking the server DOWN cuts its open
/// WebSocket tunnels at once; without it they stay.
#[tokio::test]
async fn marked_down_cuts_tunnels_with_shutdown_sessions() {
    for shutdown in [true, false] {
        let s = echo_server("a").await;
        let mut be = backend(&[&s]);
        be.health_check = Some(common::fast_checks());
        be.shutdown_sessions_on_down = shutdown;
        let (proxy, addr) = start(be);
        let mut health = proxy.backend_health("ws").unwrap();
        let mut ws = connect(addr).await;
        assert_eq!(next_text(&mut ws).await.as_deref(), Some("hello from a"));
        s.healthy.store(false, Ordering::SeqCst);
        tokio::time::timeout(WAIT, health.wait_for(|h| h.up == 0))
            .await
            .expect("server marked DOWN")
            .unwrap();
        if shutdown {
            let end = tokio::time::timeout(WAIT, ws.next()).await;
            assert!(
                matches!(end, Ok(None) | Ok(Some(Err(_)))),
                "tunnel still open after DOWN: {end:?}"
            );
        } else {
            ws.send(Message::text("still there")).await.unwrap();
            assert_eq!(next_text(&mut ws).await.as_deref(), Some("still there"));
        }
        eventually("upgrade counted", WAIT, || {
            s.upgrades.load(Ordering::SeqCst) == 1
        })
        .await;
    }
}
