//! HTTP/1 smuggling and framing defects, reproduced byte-exactly with a raw-TCP client and a
//! scripted raw-TCP server (issue 11): a request or response that cannot be framed without
//! doubt is refused (400 to a bad request, 502 for a bad response), never guessed at, and
//! bytes a server sent beyond a response never become the next response.
//!
//! Both server-side paths are exercised: body-less requests (GET) go through the direct
//! exchange, requests with a body (POST) through hyper's client on a lent connection.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use proxy::config::{BackendConfig, HostMatch, RouteConfig, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Bound on every read of a test client or server.
const WAIT: Duration = Duration::from_secs(5);

/// A scripted server: the request for `/<name>` gets `replies[name]` written as is (a reply
/// ending in `!close` is written without it, then the connection closed). Records every
/// request it read (head and body, raw), and counts connections.
struct Script {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    connections: Arc<AtomicUsize>,
}

impl Script {
    async fn start(replies: &[(&str, &[u8])]) -> Script {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let replies: Arc<HashMap<String, Vec<u8>>> = Arc::new(
            replies
                .iter()
                .map(|(n, r)| ((*n).to_string(), r.to_vec()))
                .collect(),
        );
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (req2, conn2) = (requests.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                conn2.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(s, replies.clone(), req2.clone()));
            }
        });
        Script {
            addr,
            requests,
            connections,
        }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("lock").clone()
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn serve(
    mut s: TcpStream,
    replies: Arc<HashMap<String, Vec<u8>>>,
    requests: Arc<Mutex<Vec<String>>>,
) {
    let mut buf = Vec::new();
    loop {
        let Some(end) = find(&buf, b"\r\n\r\n") else {
            if !fill(&mut s, &mut buf).await {
                return;
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
        let lower = head.to_ascii_lowercase();
        let mut taken = end + 4;
        if lower.contains("\ntransfer-encoding: chunked") {
            // Up to the last chunk and an empty trailer section (test bodies are small).
            loop {
                if let Some(e) = find(&buf[taken..], b"0\r\n\r\n") {
                    taken += e + 5;
                    break;
                }
                if !fill(&mut s, &mut buf).await {
                    return;
                }
            }
        } else if let Some(n) = lower
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
        {
            while buf.len() < taken + n {
                if !fill(&mut s, &mut buf).await {
                    return;
                }
            }
            taken += n;
        }
        let request = String::from_utf8_lossy(&buf[..taken]).into_owned();
        buf.drain(..taken);
        let path = head
            .split(' ')
            .nth(1)
            .unwrap_or("/")
            .trim_start_matches('/')
            .to_string();
        requests.lock().expect("lock").push(request);
        let reply = replies
            .get(&path)
            .cloned()
            .unwrap_or_else(|| b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec());
        let (reply, close) = match reply.strip_suffix(b"!close") {
            Some(r) => (r.to_vec(), true),
            None => (reply, false),
        };
        if s.write_all(&reply).await.is_err() || close {
            return;
        }
    }
}

async fn fill(s: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    match tokio::time::timeout(WAIT, s.read(&mut chunk)).await {
        Ok(Ok(n)) if n > 0 => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
        _ => false,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A response as the client received it, body de-chunked.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn body(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one response from the proxy (always framed by Content-Length or chunked, or by the
/// end of the stream). `None` when the connection closed or stalled before a whole response.
async fn read_answer(s: &mut TcpStream, buf: &mut Vec<u8>, head_request: bool) -> Option<Answer> {
    let end = loop {
        if let Some(e) = find(buf, b"\r\n\r\n") {
            break e;
        }
        if !fill(s, buf).await {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse::<u16>().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    buf.drain(..end + 4);
    let get = |n: &str| headers.iter().find(|(h, _)| h == n).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if head_request || status == 204 || status == 304 || status < 200 {
    } else if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let line_end = loop {
                if let Some(e) = find(buf, b"\r\n") {
                    break e;
                }
                if !fill(s, buf).await {
                    return None;
                }
            };
            let line = String::from_utf8_lossy(&buf[..line_end]).into_owned();
            let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
            buf.drain(..line_end + 2);
            if size == 0 {
                while find(buf, b"\r\n").is_none() {
                    if !fill(s, buf).await {
                        return None;
                    }
                }
                // Trailers are not used by these tests: an empty section.
                let e = find(buf, b"\r\n")?;
                buf.drain(..e + 2);
                break;
            }
            while buf.len() < size + 2 {
                if !fill(s, buf).await {
                    return None;
                }
            }
            body.extend(buf.drain(..size));
            buf.drain(..2);
        }
    } else if let Some(n) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        while buf.len() < n {
            if !fill(s, buf).await {
                return None;
            }
        }
        body.extend(buf.drain(..n));
    } else {
        while fill(s, buf).await {}
        body.append(buf);
    }
    Some(Answer {
        status,
        headers,
        body,
    })
}

/// Sends `request` on a new connection and reads one response.
async fn ask(addr: SocketAddr, request: &[u8]) -> Option<Answer> {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request).await.expect("write");
    let head = request.starts_with(b"HEAD ");
    read_answer(&mut s, &mut Vec::new(), head).await
}

fn get_req(path: &str) -> Vec<u8> {
    format!("GET /{path} HTTP/1.1\r\nHost: a.test\r\n\r\n").into_bytes()
}

fn post_req(path: &str) -> Vec<u8> {
    format!("POST /{path} HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\n\r\nabc").into_bytes()
}

/// A proxy with one frontend `www` and one backend `be` on `server`.
fn proxy_to(server: SocketAddr) -> Running {
    let be = BackendConfig::new("be", vec![ServerConfig::new("s", server)]);
    start(vec![frontend(vec![], Some("be"))], vec![be])
}

// ---- 1. Content-Length and Transfer-Encoding in one response ----

#[tokio::test]
async fn response_with_length_and_chunked_is_read_as_chunked_on_both_paths() {
    let reply: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n\
        5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    let s = Script::start(&[
        ("both", reply),
        ("next", b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext"),
    ])
    .await;
    let p = proxy_to(s.addr);
    for request in [get_req("both"), post_req("both")] {
        let mut c = TcpStream::connect(p.addr).await.expect("connect");
        let mut buf = Vec::new();
        c.write_all(&request).await.expect("write");
        let a = read_answer(&mut c, &mut buf, false)
            .await
            .expect("an answer");
        assert_eq!(a.status, 200, "{a:?}");
        assert_eq!(a.body(), "hello world", "chunked wins: {a:?}");
        assert_ne!(a.header("content-length"), Some("3"), "{a:?}");
        // The client connection is still in step.
        c.write_all(&get_req("next")).await.expect("write");
        let a = read_answer(&mut c, &mut buf, false)
            .await
            .expect("next answer");
        assert_eq!(a.body(), "next");
    }
}

// ---- 2. Host ----

#[tokio::test]
async fn bad_host_fields_get_400_and_reach_no_server() {
    let s = Script::start(&[("x", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")]).await;
    let p = proxy_to(s.addr);
    let bad: &[&[u8]] = &[
        b"GET /x HTTP/1.1\r\nHost: a.test\r\nHost: a.test\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n",
        b"GET /x HTTP/1.1\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: a b\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: a.test:8o\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: a/b\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: user@a.test\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: [::1\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: a.test, b.test\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\nContent-Length: 3\r\n\r\nabc",
    ];
    for req in bad {
        let a = ask(p.addr, req).await;
        let shown = String::from_utf8_lossy(req);
        let a = a.unwrap_or_else(|| panic!("no answer to {shown:?}"));
        assert_eq!(a.status, 400, "{shown:?}: {a:?}");
        assert_eq!(a.header("connection"), Some("close"), "{shown:?}");
    }
    assert_eq!(s.requests().len(), 0, "{:?}", s.requests());
    // Each is a request error on the stats (HAProxy's `ereq`).
    let errors = || {
        p.proxy
            .stats()
            .frontends
            .iter()
            .find(|f| f.name == "www")
            .map(|f| f.counters.errors_request)
    };
    assert_eq!(errors(), Some(bad.len() as u64));
    let good: &[&[u8]] = &[
        b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: A.Test:8080\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: 198.51.100.7\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n",
        b"GET /x HTTP/1.0\r\n\r\n",
    ];
    for req in good {
        let shown = String::from_utf8_lossy(req);
        let a = ask(p.addr, req)
            .await
            .unwrap_or_else(|| panic!("no answer to {shown:?}"));
        assert_eq!(a.status, 200, "{shown:?}: {a:?}");
    }
    assert_eq!(s.requests().len(), good.len());
    assert_eq!(
        errors(),
        Some(bad.len() as u64),
        "good requests are no errors"
    );
}

// ---- 3. Absolute-form targets ----

fn host_route(host: &str, backend: &str) -> RouteConfig {
    let mut r = RouteConfig::new(backend);
    r.host = Some(HostMatch::parse(host));
    r
}

#[tokio::test]
async fn absolute_form_authority_routes_and_replaces_host() {
    let ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let a = Script::start(&[("x", ok)]).await;
    let other = Script::start(&[("x", ok)]).await;
    let p = start(
        vec![frontend(
            vec![host_route("a.test", "a"), host_route("other.test", "other")],
            None,
        )],
        vec![
            BackendConfig::new("a", vec![ServerConfig::new("a", a.addr)]),
            BackendConfig::new("other", vec![ServerConfig::new("o", other.addr)]),
        ],
    );
    for req in [
        &b"GET http://other.test/x HTTP/1.1\r\nHost: a.test\r\n\r\n"[..],
        b"POST http://other.test:8080/x HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\n\r\nabc",
    ] {
        let r = ask(p.addr, req).await.expect("answer");
        assert_eq!(r.status, 200, "{r:?}");
    }
    assert_eq!(a.requests().len(), 0, "{:?}", a.requests());
    let seen = other.requests();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[0].starts_with("GET /x HTTP/1.1\r\n"), "{seen:?}");
    assert!(
        seen[0]
            .to_ascii_lowercase()
            .contains("\nhost: other.test\r\n"),
        "{seen:?}"
    );
    assert!(!seen[0].contains("a.test"), "{seen:?}");
    assert!(seen[1].starts_with("POST /x HTTP/1.1\r\n"), "{seen:?}");
    assert!(
        seen[1]
            .to_ascii_lowercase()
            .contains("\nhost: other.test:8080\r\n"),
        "{seen:?}"
    );
    assert!(!seen[1].contains("a.test"), "{seen:?}");
    // An authority that is not a valid host, or carries user info: refused.
    let r = ask(
        p.addr,
        b"GET http://u@other.test/x HTTP/1.1\r\nHost: a.test\r\n\r\n",
    )
    .await
    .expect("answer");
    assert_eq!(r.status, 400, "{r:?}");
}

// ---- 4. GET/HEAD with a body ----

#[tokio::test]
async fn get_and_head_with_a_chunked_body_forward_it_framed() {
    let s = Script::start(&[("g", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")]).await;
    let p = proxy_to(s.addr);
    for (method, req) in [
        ("GET", &b"GET /g HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"[..]),
        ("HEAD", b"HEAD /g HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        ("GET", b"GET /g HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n\r\nhello"),
    ] {
        let shown = String::from_utf8_lossy(req);
        let r = ask(p.addr, req).await.unwrap_or_else(|| panic!("{shown:?}"));
        assert_eq!(r.status, 200, "{shown:?} {r:?}");
        let seen = s.requests();
        let last = seen.last().expect("forwarded");
        assert!(last.starts_with(method), "{last:?}");
        let lower = last.to_ascii_lowercase();
        let framed_chunked =
            lower.contains("\ntransfer-encoding: chunked\r\n") && last.ends_with("5\r\nhello\r\n0\r\n\r\n");
        let framed_length = lower.contains("\ncontent-length: 5\r\n") && last.ends_with("\r\n\r\nhello");
        assert!(framed_chunked || framed_length, "body lost or unframed: {last:?}");
    }
}

// ---- 5. Unsolicited 101 ----

#[tokio::test]
async fn unsolicited_switching_protocols_is_a_502() {
    let up: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\nhello";
    let s = Script::start(&[("up", up)]).await;
    let p = proxy_to(s.addr);
    for req in [get_req("up"), post_req("up")] {
        let shown = String::from_utf8_lossy(&req).into_owned();
        let r = ask(p.addr, &req)
            .await
            .unwrap_or_else(|| panic!("{shown:?}"));
        assert_eq!(r.status, 502, "{shown:?} {r:?}");
    }
}

// ---- 6. Bad chunked framing before anything was sent ----

#[tokio::test]
async fn invalid_chunk_size_in_the_first_bytes_is_a_502() {
    let s = Script::start(&[
        ("zz", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"),
        ("neg", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n"),
        ("huge", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
        ("nocrlf", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n"),
    ])
    .await;
    let p = proxy_to(s.addr);
    for name in ["zz", "neg", "huge", "nocrlf"] {
        let r = ask(p.addr, &get_req(name)).await;
        let r = r.unwrap_or_else(|| panic!("no answer to GET {name}"));
        assert_eq!(r.status, 502, "{name} {r:?}");
        // hyper's client (requests with a body) hands over the head before it decodes the
        // body: the error comes after the head went out, and the client connection is cut
        // without a last chunk (lb.md §14), never completed.
        let r = ask(p.addr, &post_req(name)).await;
        assert!(
            r.as_ref().is_none_or(|r| r.status == 502),
            "POST {name} {r:?}"
        );
    }
}

// ---- Other response framing defects ----

#[tokio::test]
async fn responses_that_cannot_be_framed_without_doubt_are_502() {
    let cases: &[(&str, &[u8])] = &[
        ("cl2", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"),
        ("clcomma", b"HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\nabcd"),
        ("clsign", b"HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc"),
        ("tt", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        ("tt2", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        ("te10", b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        ("fold", b"HTTP/1.1 200 OK\r\nX-A: 1\r\n  2\r\nContent-Length: 2\r\n\r\nok"),
        ("nul", b"HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 2\r\n\r\nok"),
        ("cr", b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 2\r\n\r\nok"),
        ("space", b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok"),
        ("s099", b"HTTP/1.1 099 Odd\r\nContent-Length: 2\r\n\r\nok"),
        ("s20", b"HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok"),
        ("sabc", b"HTTP/1.1 abc OK\r\nContent-Length: 2\r\n\r\nok"),
        ("v2", b"HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        ("1xxbody", b"HTTP/1.1 100 Continue\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    ];
    let s = Script::start(cases).await;
    let p = proxy_to(s.addr);
    for (name, reply) in cases {
        for req in [get_req(name), post_req(name)] {
            let shown = String::from_utf8_lossy(reply).into_owned();
            let method = String::from_utf8_lossy(&req[..4]).into_owned();
            let r = ask(p.addr, &req).await;
            let r = r.unwrap_or_else(|| panic!("no answer to {method} {name}: {shown:?}"));
            assert_eq!(r.status, 502, "{method} {name}: {shown:?} {r:?}");
        }
    }
}

#[tokio::test]
async fn interim_responses_are_skipped() {
    let cases: &[(&str, &[u8])] = &[
        ("c", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        ("hints", b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    ];
    let s = Script::start(cases).await;
    let p = proxy_to(s.addr);
    for (name, _) in cases {
        for req in [get_req(name), post_req(name)] {
            let r = ask(p.addr, &req).await.expect("answer");
            assert_eq!(
                (r.status, r.body()),
                (200, "ok".to_string()),
                "{name} {r:?}"
            );
        }
    }
}

/// Bytes a server sends beyond a response (a longer body than its Content-Length, a body to
/// HEAD, 204 or 304) are never read as the answer to the next request on that connection.
#[tokio::test]
async fn bytes_beyond_a_response_never_answer_the_next_request() {
    const SMUGGLED: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled";
    let long: Vec<u8> = [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"[..],
        SMUGGLED,
    ]
    .concat();
    let nc: Vec<u8> = [
        &b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"[..],
        SMUGGLED,
    ]
    .concat();
    let nm: Vec<u8> = [&b"HTTP/1.1 304 Not Modified\r\n\r\n"[..], SMUGGLED].concat();
    let head: Vec<u8> = [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 52\r\n\r\n"[..],
        SMUGGLED,
    ]
    .concat();
    let cases: Vec<(&str, &[u8])> = vec![
        ("long", &long),
        ("nc", &nc),
        ("nm", &nm),
        ("head", &head),
        ("next", b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nreal"),
    ];
    let s = Script::start(&cases).await;
    let p = proxy_to(s.addr);
    let first_requests = [
        get_req("long"),
        post_req("long"),
        get_req("nc"),
        get_req("nm"),
        b"HEAD /head HTTP/1.1\r\nHost: a.test\r\n\r\n".to_vec(),
    ];
    for first in first_requests {
        let shown = String::from_utf8_lossy(&first).into_owned();
        let mut c = TcpStream::connect(p.addr).await.expect("connect");
        let mut buf = Vec::new();
        c.write_all(&first).await.expect("write");
        let head_req = first.starts_with(b"HEAD");
        let a = read_answer(&mut c, &mut buf, head_req)
            .await
            .expect("answer");
        assert_ne!(a.body(), "smuggled", "{shown:?}");
        // Wait until the stray bytes certainly arrived at the proxy.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let connections = s.connections();
        for next in [get_req("next"), post_req("next")] {
            c.write_all(&next).await.expect("write");
            let a = read_answer(&mut c, &mut buf, false)
                .await
                .expect("next answer");
            assert_eq!(
                (a.status, a.body()),
                (200, "real".to_string()),
                "after {shown:?}: {a:?}"
            );
        }
        // The server connection that carried the stray bytes served nothing else.
        assert!(s.connections() > connections, "after {shown:?}");
    }
}

// ---- Request side ----

#[tokio::test]
async fn request_framing_conflicts_are_refused_or_reframed() {
    let s = Script::start(&[("r", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")]).await;
    let p = proxy_to(s.addr);
    // Refused before any server sees them.
    let refused: &[&[u8]] = &[
        b"POST /r HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"POST /r HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"POST /r HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"POST /r HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: gzip\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"POST /r HTTP/1.0\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"POST /r HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    ];
    for req in refused {
        let shown = String::from_utf8_lossy(req);
        let r = ask(p.addr, req)
            .await
            .unwrap_or_else(|| panic!("{shown:?}"));
        assert_eq!(r.status, 400, "{shown:?} {r:?}");
    }
    assert_eq!(s.requests().len(), 0, "{:?}", s.requests());
    // Content-Length and chunked: chunked wins, the server gets one framing, and the client
    // connection closes after the answer (RFC 9112 §6.1), so what follows is never read as
    // a request.
    let mut c = TcpStream::connect(p.addr).await.expect("connect");
    c.write_all(
        b"POST /r HTTP/1.1\r\nHost: a.test\r\nContent-Length: 30\r\nTransfer-Encoding: chunked\r\n\r\n\
          3\r\nabc\r\n0\r\n\r\nGET /r HTTP/1.1\r\nHost: a.test\r\n\r\n",
    )
    .await
    .expect("write");
    let mut buf = Vec::new();
    let a = read_answer(&mut c, &mut buf, false).await;
    assert_eq!(a.map(|a| a.status), Some(200), "{:?}", s.requests());
    let a = read_answer(&mut c, &mut buf, false).await;
    assert!(a.is_none(), "connection kept after CL+TE: {a:?}");
    assert_eq!(s.requests().len(), 1, "{:?}", s.requests());
    for r in s.requests() {
        let lower = r.to_ascii_lowercase();
        assert!(
            !(lower.contains("\ncontent-length:") && lower.contains("\ntransfer-encoding:")),
            "{r:?}"
        );
        if r.starts_with("POST") {
            assert!(r.ends_with("3\r\nabc\r\n0\r\n\r\n"), "{r:?}");
        }
    }
}

// ---- Logging ----

#[derive(Clone, Default)]
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

/// Access log lines say who refused what: `PR--` for a request vrrplb refused, `PH--` for a
/// response it refused, and a line gives the reason.
#[tokio::test]
async fn refusals_are_logged_with_their_reason_and_termination_state() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .without_time()
        .with_max_level(tracing::Level::INFO)
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
    let s = Script::start(&[(
        "split",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
    )])
    .await;
    let mut f = frontend(vec![], Some("be"));
    f.name = "hardlog".into();
    let p = proxy::Proxy::start(proxy::config::ProxyConfig::new(
        vec![f],
        vec![BackendConfig::new(
            "be",
            vec![ServerConfig::new("s", s.addr)],
        )],
    ))
    .expect("starts");
    let addr = p.local_addrs("hardlog")[0];
    let a = ask(addr, b"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").await;
    assert_eq!(a.map(|a| a.status), Some(400));
    let a = ask(addr, &get_req("split")).await;
    assert_eq!(a.map(|a| a.status), Some(502));
    let logs = || String::from_utf8_lossy(&capture.0.lock().expect("lock")).into_owned();
    eventually("two access log lines", Duration::from_secs(3), || {
        logs().matches(" hardlog ").count() >= 2
    })
    .await;
    let logs = logs();
    let line = |status: &str| {
        logs.lines()
            .find(|l| l.contains(" hardlog ") && l.contains(&format!(" {status} ")))
            .unwrap_or_else(|| panic!("no {status} line: {logs}"))
    };
    assert!(line("400").contains(" PR-- "), "{logs}");
    assert!(line("502").contains(" PH-- "), "{logs}");
    assert!(line("502").contains(" be/s "), "{logs}");
    assert!(logs.contains("more than one Host field"), "{logs}");
    assert!(logs.contains("chunked applied twice"), "{logs}");
}
