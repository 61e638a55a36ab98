//! Responses as servers frame them (RFC 9112 §6.3) reach the client intact, and a server
//! connection serves the next request only after a complete keep-alive response: chunked
//! bodies with trailers, bodies delimited by the end of the stream, `Connection: close`,
//! HEAD, interim 1xx responses, and requests with a body sharing the pool with those without.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A raw server answering the request whose path is `/<name>` with `replies[name]`; a reply
/// ending in `!close` is sent without it and the connection closed. Request bodies announced
/// by Content-Length are skipped. Counts connections and requests.
struct Raw {
    addr: std::net::SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

async fn raw_server(replies: &'static [(&'static str, &'static str)]) -> Raw {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let connections = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let (c2, r2) = (connections.clone(), requests.clone());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            c2.fetch_add(1, Ordering::SeqCst);
            let r3 = r2.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        let mut chunk = [0u8; 4096];
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                    let body_len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < end + 4 + body_len {
                        let mut chunk = [0u8; 4096];
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buf.drain(..end + 4 + body_len);
                    r3.fetch_add(1, Ordering::SeqCst);
                    let path = head
                        .split(' ')
                        .nth(1)
                        .unwrap_or("/")
                        .trim_start_matches('/');
                    let reply = replies
                        .iter()
                        .find(|(n, _)| *n == path)
                        .map(|(_, r)| *r)
                        .unwrap_or("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
                    let (reply, close) = match reply.strip_suffix("!close") {
                        Some(r) => (r, true),
                        None => (reply, false),
                    };
                    if s.write_all(reply.as_bytes()).await.is_err() || close {
                        return;
                    }
                }
            });
        }
    });
    Raw {
        addr,
        connections,
        requests,
    }
}

const REPLIES: &[(&str, &str)] = &[
    (
        "len",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Kind: len\r\n\r\nhello",
    ),
    (
        "chunked",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n7\r\n, world\r\n0\r\nX-Sum: 12\r\n\r\n",
    ),
    (
        "eof",
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end!close",
    ),
    (
        "close",
        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbye!close",
    ),
    (
        "interim",
        "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 Fine\r\nContent-Length: 2\r\n\r\nok",
    ),
    ("head", "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"),
    (
        "post",
        "HTTP/1.1 201 Created\r\nContent-Length: 7\r\n\r\ncreated",
    ),
    (
        "truncated",
        "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort!close",
    ),
];

fn backend_of(s: &Raw) -> proxy::config::BackendConfig {
    let mut b = proxy::config::BackendConfig::new(
        "web",
        vec![proxy::config::ServerConfig::new("s1", s.addr)],
    );
    b.retries = 0;
    b.timeouts.server = Duration::from_secs(2);
    b
}

#[tokio::test]
async fn bodies_arrive_whole_and_connections_are_reused_only_after_keep_alive_responses() {
    let srv = raw_server(REPLIES).await;
    let run = start(vec![frontend(vec![], Some("web"))], vec![backend_of(&srv)]);
    let c = client();
    let url = |p: &str| format!("{}/{p}", run.base);

    let r = get(&c, &url("len")).await;
    assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "hello"));
    assert_eq!(r.header("x-kind"), Some("len"));
    let r = get(&c, &url("chunked")).await;
    assert_eq!(r.body, "hello, world");
    let r = get(&c, &url("interim")).await;
    assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "ok"));
    let head = http::Request::head(url("head"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let r = send(&c, head).await.expect("HEAD");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("1234"));
    assert_eq!(r.body, "");
    // A request with a body borrows the same pooled connection and gives it back.
    let post = http::Request::post(url("post"))
        .body(Full::new(Bytes::from_static(b"x=1")))
        .unwrap();
    let r = send(&c, post).await.expect("POST");
    assert_eq!((r.status.as_u16(), r.body.as_str()), (201, "created"));
    assert_eq!(get(&c, &url("len")).await.body, "hello");
    assert_eq!(srv.requests.load(Ordering::SeqCst), 6);
    assert_eq!(
        srv.connections.load(Ordering::SeqCst),
        1,
        "keep-alive responses leave the connection to the next request"
    );

    // Bodies delimited by the end of the stream, and `Connection: close`: the connection is
    // not used again.
    let r = get(&c, &url("eof")).await;
    assert_eq!(r.body, "until the end");
    assert_eq!(get(&c, &url("len")).await.body, "hello");
    assert_eq!(srv.connections.load(Ordering::SeqCst), 2);
    let r = get(&c, &url("close")).await;
    assert_eq!(r.body, "bye");
    assert_eq!(r.header("connection"), None, "hop-by-hop field removed");
    assert_eq!(get(&c, &url("len")).await.body, "hello");
    assert_eq!(srv.connections.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_body_cut_short_is_not_completed_and_the_connection_not_reused() {
    let srv = raw_server(REPLIES).await;
    let run = start(vec![frontend(vec![], Some("web"))], vec![backend_of(&srv)]);
    let c = client();
    let r = send(
        &c,
        http::Request::get(format!("{}/truncated", run.base))
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert!(
        r.is_err(),
        "the client must see an incomplete body: {:?}",
        r.map(|r| r.body)
    );
    let r = get(&client(), &format!("{}/len", run.base)).await;
    assert_eq!(r.body, "hello");
    assert_eq!(srv.connections.load(Ordering::SeqCst), 2);
}
