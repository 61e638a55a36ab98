//! A request that meets a dead pooled connection: sent again on a fresh connection when the
//! connection was reused (the idle-close race, RFC 9112 §9.3.1; see proxy/src/connector.rs),
//! never when the connection was fresh (a server that dies on a request must not get it twice)
//! nor for a POST.

mod common;

use common::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A raw backend. Each connection answers its first `answered` requests, then reads the next
/// request and closes without a response: with a FIN, or with a reset (`reset`: what a dead
/// process's kernel answers to a request on a closed socket). Counts connections and requests.
struct Scripted {
    addr: std::net::SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    /// Connections the proxy closed (end of stream seen while waiting for a request).
    closed: Arc<AtomicUsize>,
}

async fn scripted(answered: usize, reset: bool) -> Scripted {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let connections = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicUsize::new(0));
    let (c2, r2, x2) = (connections.clone(), requests.clone(), closed.clone());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            c2.fetch_add(1, Ordering::SeqCst);
            let r3 = r2.clone();
            let x3 = x2.clone();
            tokio::spawn(async move {
                let mut served = 0;
                let mut buf = Vec::new();
                loop {
                    let mut chunk = [0u8; 4096];
                    let n = match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => {
                            x3.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                        Ok(n) => n,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        r3.fetch_add(1, Ordering::SeqCst);
                        if served == answered {
                            if reset {
                                let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
                            }
                            return; // close without answering
                        }
                        served += 1;
                        let body = "ok";
                        let resp = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if s.write_all(resp.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    Scripted {
        addr,
        connections,
        requests,
        closed,
    }
}

fn backend_of(s: &Scripted) -> proxy::config::BackendConfig {
    let mut b = proxy::config::BackendConfig::new(
        "web",
        vec![proxy::config::ServerConfig::new("s1", s.addr)],
    );
    b.retries = 0;
    b
}

#[tokio::test]
async fn get_on_a_reused_connection_that_died_is_sent_again_on_a_fresh_one() {
    for reset in [false, true] {
        reused_connection_case(reset).await;
    }
}

async fn reused_connection_case(reset: bool) {
    let srv = scripted(1, reset).await;
    let run = start(vec![frontend(vec![], Some("web"))], vec![backend_of(&srv)]);
    let c = client();
    let first = get(&c, &format!("{}/a", run.base)).await;
    assert_eq!(first.status, 200);
    // The pooled connection closes on its second request: the proxy replays on a new one.
    let second = get(&c, &format!("{}/b", run.base)).await;
    assert_eq!(second.status, 200, "reset={reset}: {}", second.body);
    assert_eq!(srv.connections.load(Ordering::SeqCst), 2);
    assert_eq!(srv.requests.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn get_on_a_fresh_connection_that_died_is_not_sent_again() {
    let srv = scripted(0, true).await;
    let run = start(vec![frontend(vec![], Some("web"))], vec![backend_of(&srv)]);
    let r = get(&client(), &format!("{}/a", run.base)).await;
    assert_eq!(r.status, 502);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        srv.requests.load(Ordering::SeqCst),
        1,
        "a request that may have crashed the server was replayed"
    );
}

#[tokio::test]
async fn post_on_a_reused_connection_that_died_is_not_sent_again() {
    let srv = scripted(1, true).await;
    let run = start(vec![frontend(vec![], Some("web"))], vec![backend_of(&srv)]);
    let c = client();
    assert_eq!(get(&c, &format!("{}/a", run.base)).await.status, 200);
    let req = http::Request::post(format!("{}/b", run.base))
        .body(http_body_util::Full::new(bytes::Bytes::from_static(b"x=1")))
        .expect("request");
    let r = send(&c, req).await.expect("reply");
    assert_eq!(r.status, 502);
    assert_eq!(
        srv.requests.load(Ordering::SeqCst),
        2,
        "a POST was replayed"
    );
}

#[tokio::test]
async fn keep_alive_requests_share_one_server_connection() {
    let srv = scripted(usize::MAX, false).await;
    let run = start(vec![frontend(vec![], Some("web"))], vec![backend_of(&srv)]);
    let c = client();
    for i in 0..5 {
        assert_eq!(get(&c, &format!("{}/{i}", run.base)).await.status, 200);
    }
    assert_eq!(srv.requests.load(Ordering::SeqCst), 5);
    assert_eq!(
        srv.connections.load(Ordering::SeqCst),
        1,
        "one pooled server connection serves them all"
    );
}

#[tokio::test]
async fn idle_server_connections_are_closed_after_server_idle() {
    // lb.md §7: pooled connections idle longer than `server_idle` are closed (before the
    // server's own keep-alive timeout closes them under a request).
    let srv = scripted(usize::MAX, false).await;
    let mut b = backend_of(&srv);
    b.timeouts.server_idle = Duration::from_millis(150);
    let run = start(vec![frontend(vec![], Some("web"))], vec![b]);
    let c = client();
    assert_eq!(get(&c, &format!("{}/a", run.base)).await.status, 200);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(srv.closed.load(Ordering::SeqCst), 0, "closed too early");
    let closed = srv.closed.clone();
    eventually(
        "the idle connection is closed",
        Duration::from_secs(2),
        || closed.load(Ordering::SeqCst) == 1,
    )
    .await;
    // The next request gets a fresh connection.
    assert_eq!(get(&c, &format!("{}/b", run.base)).await.status, 200);
    assert_eq!(srv.connections.load(Ordering::SeqCst), 2);
}
