//! `on_marked_down: shutdown_sessions` in HTTP mode (HAProxy `on-marked-down
//! shutdown-sessions`; upgraded tunnels: websocket.rs): when a check marks a server DOWN,
//! its idle pooled connections are closed (always) and a response it is still streaming is
//! cut (only with the option), on loopback.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::eventually;
use proxy::config::{BackendConfig, FrontendConfig, ProxyConfig, ServerConfig};
use proxy::Proxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const WAIT: Duration = Duration::from_secs(5);

/// `/health`: 200 while healthy, else 503. `/x`: a small keep-alive answer. `/stream`: a
/// chunked body with one chunk every 50 ms for 20 s. `open` counts the connections that
/// served `/x` or `/stream` and are not closed yet.
struct Server {
    addr: SocketAddr,
    healthy: Arc<AtomicBool>,
    open: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn server() -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let healthy = Arc::new(AtomicBool::new(true));
    let open = Arc::new(AtomicUsize::new(0));
    let (h, o) = (healthy.clone(), open.clone());
    let task = tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(serve(s, h.clone(), o.clone()));
        }
    });
    Server {
        addr,
        healthy,
        open,
        task,
    }
}

async fn serve(mut s: TcpStream, healthy: Arc<AtomicBool>, open: Arc<AtomicUsize>) {
    let mut data = false;
    let mut buf = Vec::new();
    'conn: loop {
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            let mut chunk = [0u8; 1024];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break 'conn,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end + 4);
        if !data && !head.starts_with("GET /health") {
            data = true;
            open.fetch_add(1, Ordering::SeqCst);
        }
        if head.starts_with("GET /health") {
            let status = if healthy.load(Ordering::SeqCst) {
                "200 OK"
            } else {
                "503 Service Unavailable"
            };
            let r = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
            if s.write_all(r.as_bytes()).await.is_err() {
                break;
            }
        } else if head.starts_with("GET /stream") {
            if s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await
                .is_err()
            {
                break;
            }
            for _ in 0..400 {
                if s.write_all(b"5\r\ntick\n\r\n").await.is_err() {
                    break 'conn;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = s.write_all(b"0\r\n\r\n").await;
        } else if s
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .await
            .is_err()
        {
            break;
        }
    }
    if data {
        open.fetch_sub(1, Ordering::SeqCst);
    }
}

fn start(be: BackendConfig) -> (Proxy, SocketAddr) {
    let mut fe = FrontendConfig::new("www", vec!["127.0.0.1:0".parse().unwrap()]);
    fe.default_backend = Some("app".into());
    let mut cfg = ProxyConfig::new(vec![fe], vec![be]);
    cfg.node = "test".into();
    let proxy = Proxy::start(cfg).expect("proxy starts");
    let addr = proxy.local_addrs("www")[0];
    (proxy, addr)
}

/// Reads from `c` until `needle` appeared (bounded).
async fn read_until(c: &mut TcpStream, needle: &str) -> String {
    let mut got = Vec::new();
    let _ = tokio::time::timeout(WAIT, async {
        while !String::from_utf8_lossy(&got).contains(needle) {
            let mut chunk = [0u8; 1024];
            match c.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn marked_down_closes_pooled_and_cuts_streaming_responses() {
    for shutdown in [true, false] {
        let s = server().await;
        let mut be = BackendConfig::new("app", vec![ServerConfig::new("a", s.addr)]);
        be.health_check = Some(common::fast_checks());
        be.shutdown_sessions_on_down = shutdown;
        be.timeouts.server_idle = Duration::from_secs(30);
        let (proxy, addr) = start(be);

        // A response in progress on one server connection.
        let mut b = TcpStream::connect(addr).await.unwrap();
        b.write_all(b"GET /stream HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        assert!(read_until(&mut b, "tick").await.contains("tick"));
        // Meanwhile a keep-alive exchange on a second one, which then idles in the pool.
        let mut a = TcpStream::connect(addr).await.unwrap();
        a.write_all(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        assert!(read_until(&mut a, "\r\n\r\nok").await.ends_with("ok"));
        eventually("two data connections", WAIT, || {
            s.open.load(Ordering::SeqCst) == 2
        })
        .await;

        s.healthy.store(false, Ordering::SeqCst);
        let mut health = proxy.backend_health("app").unwrap();
        tokio::time::timeout(WAIT, health.wait_for(|h| h.up == 0))
            .await
            .expect("server marked DOWN")
            .unwrap();

        if shutdown {
            // The stream is cut: the client's connection ends without the last chunk.
            let rest = common::read_until_close(&mut b, WAIT).await;
            assert!(
                !rest.contains("0\r\n\r\n"),
                "stream ended cleanly: {rest:?}"
            );
            eventually("no server connection left", WAIT, || {
                s.open.load(Ordering::SeqCst) == 0
            })
            .await;
        } else {
            // The pooled one is closed, the stream goes on.
            eventually("the idle pooled connection closed", WAIT, || {
                s.open.load(Ordering::SeqCst) == 1
            })
            .await;
            let more = read_until(&mut b, "tick").await;
            assert!(more.contains("tick"), "stream stopped: {more:?}");
            assert_eq!(s.open.load(Ordering::SeqCst), 1);
        }
    }
}
