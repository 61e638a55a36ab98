//! HTTP behaviour end to end: routing, rewrites, header handling, errors, timeouts, limits.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use proxy::config::{FrontendTimeouts, HostMatch, RouteConfig};

fn host_route(host: &str, backend: &str) -> RouteConfig {
    let mut r = RouteConfig::new(backend);
    r.host = Some(HostMatch::parse(host));
    r
}

fn strip_route(prefix: &str, backend: &str) -> RouteConfig {
    let mut r = RouteConfig::new(backend);
    r.path_prefix = Some(prefix.into());
    r.strip_prefix = true;
    r
}

#[tokio::test]
async fn host_and_path_routing() {
    let one = TestServer::start("one").await;
    let two = TestServer::start("two").await;
    let three = TestServer::start("three").await;
    let routes = vec![
        host_route("Site1.Example.Test", "s1"),
        host_route("*.example.test", "wild"),
        strip_route("/app1/", "app"),
    ];
    let p = start(
        vec![frontend(routes, None)],
        vec![
            backend("s1", &[&one]),
            backend("wild", &[&two]),
            backend("app", &[&three]),
        ],
    );
    let c = client();
    let url = format!("{}/x", p.base);
    let r = get_with(&c, &url, &[("host", "SITE1.example.test:8080")]).await;
    assert_eq!(r.server(), "one");
    let r = get_with(&c, &url, &[("host", "a.b.example.test")]).await;
    assert_eq!(r.server(), "two");
    let r = get_with(
        &c,
        &format!("{}/app1/y?q=1", p.base),
        &[("host", "other.test")],
    )
    .await;
    assert_eq!(r.server(), "three");
    assert!(r.body.contains("path=/y?q=1\n"), "{}", r.body);
    let r = get_with(&c, &format!("{}/app10", p.base), &[("host", "other.test")]).await;
    assert_eq!(r.status, 503, "no route, no default");
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    assert!(r.body.contains("503 Service Unavailable"));
}

#[tokio::test]
async fn bare_prefix_redirects_with_slash() {
    let s = TestServer::start("s").await;
    let p = start(
        vec![frontend(vec![strip_route("/app1", "app")], None)],
        vec![backend("app", &[&s])],
    );
    let c = client();
    let r = get(&c, &format!("{}/app1?lang=fr", p.base)).await;
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/app1/?lang=fr"));
    assert_eq!(s.hits(), 0);
}

#[tokio::test]
async fn strip_prefix_rewrites_location_and_cookie_path() {
    let s = TestServer::start("s").await;
    let p = start(
        vec![frontend(vec![strip_route("/app1", "app")], None)],
        vec![backend("app", &[&s])],
    );
    let c = client();
    let r = get_with(
        &c,
        &format!("{}/app1/setcookie", p.base),
        &[("host", "shop.test")],
    )
    .await;
    assert_eq!(r.status, 302);
    assert!(r.body.contains("path=/setcookie\n"), "{}", r.body);
    assert_eq!(r.header("location"), Some("/app1/login"));
    assert_eq!(r.header("set-cookie"), Some("sess=1; Path=/app1/cart"));
    assert_eq!(
        r.header("content-location"),
        Some("http://shop.test/app1/here")
    );
}

#[tokio::test]
async fn forwarded_for_appends_and_set_headers_apply() {
    let s = TestServer::start("s").await;
    let mut f = frontend(vec![], Some("be"));
    f.forwarded_for = true;
    f.set_headers = vec![("X-Client-IP".into(), "%[src]".into())];
    let p = start(vec![f], vec![backend("be", &[&s])]);
    let c = client();
    let r = get_with(
        &c,
        &format!("{}/", p.base),
        &[
            ("x-forwarded-for", "10.9.8.7"),
            ("x-forwarded-proto", "https"),
            ("x-client-ip", "1.2.3.4"),
        ],
    )
    .await;
    assert!(
        r.body.contains("x-forwarded-for: 10.9.8.7, 127.0.0.1\n"),
        "{}",
        r.body
    );
    assert!(r.body.contains("x-forwarded-proto: http\n"), "{}", r.body);
    assert!(r.body.contains("x-client-ip: 127.0.0.1\n"), "{}", r.body);
    assert!(!r.body.contains("1.2.3.4"), "{}", r.body);
}

#[tokio::test]
async fn forwarded_for_fields_are_added_to_a_plain_request() {
    let s = TestServer::start("s").await;
    let mut f = frontend(vec![], Some("be"));
    f.forwarded_for = true;
    let p = start(vec![f], vec![backend("be", &[&s])]);
    let r = get(&client(), &format!("{}/", p.base)).await;
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains("x-forwarded-for: 127.0.0.1\n"),
        "{}",
        r.body
    );
    assert!(r.body.contains("x-forwarded-proto: http\n"), "{}", r.body);
    let host = p.base.trim_start_matches("http://");
    assert!(
        r.body.contains(&format!("x-forwarded-host: {host}\n")),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_both_ways() {
    let s = TestServer::start("s").await;
    let p = start(
        vec![frontend(vec![], Some("be"))],
        vec![backend("be", &[&s])],
    );
    let req =
        b"GET /hopbyhop HTTP/1.1\r\nHost: h.test\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\n\
                Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nX-Kept: yes\r\n\r\n";
    let resp = raw(p.addr, req, Duration::from_secs(5))
        .await
        .to_ascii_lowercase();
    assert!(resp.starts_with("http/1.1 200"), "{resp}");
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    assert!(body.contains("x-kept: yes\n"), "{body}");
    assert!(body.contains("host: h.test\n"), "{body}");
    for gone in ["x-secret", "keep-alive", "proxy-connection", "connection"] {
        assert!(
            !body.contains(&format!("{gone}:")),
            "{gone} reached the server: {body}"
        );
    }
    assert!(!head.contains("x-secret"), "{head}");
    assert!(!head.contains("keep-alive"), "{head}");
}

#[tokio::test]
async fn slow_server_gives_504() {
    let s = TestServer::start("s").await;
    let mut be = backend("be", &[&s]);
    be.timeouts.server = Duration::from_millis(300);
    let p = start(vec![frontend(vec![], Some("be"))], vec![be]);
    let c = client();
    let t = Instant::now();
    let r = get(&c, &format!("{}/slow/2000", p.base)).await;
    assert_eq!(r.status, 504);
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(r.header("cache-control"), Some("no-cache"));
}

/// A client that ends its sending side (FIN) after its request still gets the answer, as with
/// HAProxy without `abortonclose` (frontend.rs `HALF_CLOSE`): the balancer does not read the
/// client socket while the request is in flight. Wall time: ~0.3 s.
#[tokio::test]
async fn a_request_followed_by_a_fin_is_still_answered() {
    use tokio::io::AsyncWriteExt;
    let s = TestServer::start("s").await;
    let p = start(
        vec![frontend(vec![], Some("be"))],
        vec![backend("be", &[&s])],
    );
    let mut c = tokio::net::TcpStream::connect(p.addr)
        .await
        .expect("connect");
    c.write_all(b"GET /slow/300 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    c.shutdown().await.expect("shutdown");
    let resp = read_until_close(&mut c, Duration::from_secs(5)).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp:?}");
    assert!(resp.contains("path=/slow/300"), "{resp}");
    assert_eq!(s.hits(), 1);
}

#[tokio::test]
async fn refused_server_gives_503_after_retries() {
    let port = free_port();
    let mut be = proxy::config::BackendConfig::new(
        "be",
        vec![proxy::config::ServerConfig::new(
            "gone",
            format!("127.0.0.1:{port}").parse().unwrap(),
        )],
    );
    be.retries = 2;
    be.timeouts.connect = Duration::from_millis(50);
    let p = start(vec![frontend(vec![], Some("be"))], vec![be]);
    let r = get(&client(), &format!("{}/", p.base)).await;
    assert_eq!(r.status, 503);
}

fn short_timeouts() -> FrontendTimeouts {
    FrontendTimeouts {
        client: Duration::from_secs(2),
        http_request: Duration::from_millis(300),
        keep_alive: None,
    }
}

#[tokio::test]
async fn slowloris_gets_408_and_silent_client_gets_closed() {
    let s = TestServer::start("s").await;
    let mut f = frontend(vec![], Some("be"));
    f.timeouts = short_timeouts();
    let p = start(vec![f], vec![backend("be", &[&s])]);
    let t = Instant::now();
    let resp = raw(
        p.addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ",
        Duration::from_secs(3),
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 408"), "{resp:?}");
    assert!(
        resp.to_ascii_lowercase().contains("connection: close"),
        "{resp}"
    );
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // Connected, nothing sent: closed without a word.
    let resp = raw(p.addr, b"", Duration::from_secs(3)).await;
    assert_eq!(resp, "");
    // Between two requests the same: the first is answered, then a quiet close.
    let resp = raw(
        p.addr,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(!resp.contains("408"), "{resp}");
    assert_eq!(s.hits(), 1);
}

#[tokio::test]
async fn a_slow_second_request_gets_408_after_http_request_not_keep_alive() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start("s").await;
    let mut f = frontend(vec![], Some("be"));
    f.timeouts = FrontendTimeouts {
        keep_alive: Some(Duration::from_secs(5)),
        ..short_timeouts()
    };
    let p = start(vec![f], vec![backend("be", &[&s])]);
    let mut c = tokio::net::TcpStream::connect(p.addr)
        .await
        .expect("connect");
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .expect("write");
    let mut resp = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(4), c.read_to_end(&mut resp)).await;
    assert!(read.is_ok(), "not closed within 4 s");
    let resp = String::from_utf8_lossy(&resp);
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("HTTP/1.1 408"), "{resp}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

#[tokio::test]
async fn oversize_and_malformed_requests_are_rejected() {
    let s = TestServer::start("s").await;
    let p = start(
        vec![frontend(vec![], Some("be"))],
        vec![backend("be", &[&s])],
    );
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let resp = raw(p.addr, big.as_bytes(), Duration::from_secs(3)).await;
    assert!(
        resp.starts_with("HTTP/1.1 431") || resp.starts_with("HTTP/1.1 400"),
        "{resp:?}"
    );
    let t = Instant::now();
    let resp = raw(p.addr, b"NOT HTTP AT ALL\r\n\r\n", Duration::from_secs(3)).await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp:?}");
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "connection closed after the 400"
    );
    assert_eq!(s.hits(), 0);
}

#[tokio::test]
async fn server_maxconn_queues_then_times_out() {
    let s = TestServer::start("s").await;
    let mut be = backend("be", &[&s]);
    be.servers[0].maxconn = 1;
    be.timeouts.queue = Duration::from_millis(1500);
    let p = start(vec![frontend(vec![], Some("be"))], vec![be]);
    let c = client();
    // Queued behind a 300 ms request, then served.
    let slow = format!("{}/slow/300", p.base);
    let (first, second) = tokio::join!(get(&c, &slow), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let t = Instant::now();
        (get(&c, &format!("{}/", p.base)).await, t.elapsed())
    });
    assert_eq!(first.status, 200);
    assert_eq!(second.0.status, 200);
    assert!(second.0.body.contains("path=/\n"));
    assert!(
        second.1 >= Duration::from_millis(150),
        "was queued: {:?}",
        second.1
    );

    // Queued behind a 3 s request: 503 at the queue timeout.
    let slow = format!("{}/slow/3000", p.base);
    let (first, second) = tokio::join!(get(&c, &slow), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let t = Instant::now();
        (get(&c, &format!("{}/", p.base)).await, t.elapsed())
    });
    assert_eq!(first.status, 200);
    assert_eq!(second.0.status, 503);
    assert!(
        second.1 >= Duration::from_millis(1400) && second.1 < Duration::from_millis(2900),
        "{:?}",
        second.1
    );
}

#[tokio::test]
async fn h2c_prior_knowledge_is_served_only_when_configured() {
    let s = TestServer::start("s").await;
    let mut fe = frontend(vec![], Some("be"));
    fe.h2c = true;
    fe.forwarded_for = true;
    let p = start(vec![fe], vec![backend("be", &[&s])]);
    let h2: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let plain = start(
        vec![frontend(vec![], Some("be"))],
        vec![backend("be", &[&s])],
    );
    let refused = send(
        &h2,
        http::Request::get(format!("{}/h2", plain.base))
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert!(refused.is_err(), "h2c served without h2c: true");
    // HTTP/2 has no Host: the server gets one from :authority (written with the head on a
    // request without a body, set in the map for one with a body), and the forwarded_for
    // fields, exactly once each (X-Forwarded-Host from :authority too).
    let once = |body: &str, line: &str| body.matches(line).count() == 1;
    for _ in 0..3 {
        let r = get(&h2, &format!("{}/h2?x=1", p.base)).await;
        assert_eq!(r.status, 200);
        assert!(r.body.contains("path=/h2?x=1\n"), "{}", r.body);
        for line in [
            format!("\nhost: {}\n", p.addr),
            "\nx-forwarded-for: 127.0.0.1\n".to_string(),
            "\nx-forwarded-proto: http\n".to_string(),
            format!("\nx-forwarded-host: {}\n", p.addr),
        ] {
            assert!(once(&r.body, &line), "{line:?} once in {}", r.body);
        }
        assert_eq!(r.body.matches("\nhost: ").count(), 1, "{}", r.body);
    }
    let req = http::Request::post(format!("{}/form", p.base))
        .body(Full::new(Bytes::from_static(b"a=1&b=2")))
        .unwrap();
    let r = send(&h2, req).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body.contains("body=a=1&b=2\n"), "{}", r.body);
    for line in [
        format!("\nhost: {}\n", p.addr),
        "\nx-forwarded-for: 127.0.0.1\n".to_string(),
        "\nx-forwarded-proto: http\n".to_string(),
        format!("\nx-forwarded-host: {}\n", p.addr),
    ] {
        assert!(once(&r.body, &line), "{line:?} once in {}", r.body);
    }
}

/// h2c streams run in their connection's task as ALPN's do (http/h2_streams.rs): a slow
/// stream holds back none of the others on the connection, and a drain answers the stream
/// in flight and cuts the one that outlives its grace.
#[tokio::test]
async fn h2c_streams_run_side_by_side_and_a_drain_cuts_what_outlives_it() {
    const WAIT: Duration = Duration::from_secs(5);
    let s = TestServer::start("s").await;
    let mut fe = frontend(vec![], Some("be"));
    fe.h2c = true;
    let p = start(vec![fe], vec![backend("be", &[&s])]);
    let tcp = tokio::net::TcpStream::connect(p.addr)
        .await
        .expect("connect");
    let (h2, conn) = h2::client::handshake(tcp).await.expect("h2c handshake");
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    let get = |path: &str| h2_get(&h2, format!("{}{path}", p.base));

    let t0 = Instant::now();
    let slow = get("/slow/600").await;
    let mut fast = Vec::new();
    for i in 0..20 {
        fast.push((i, get(&format!("/fast/{i}")).await));
    }
    for (i, answer) in fast {
        let (status, body) = tokio::time::timeout(WAIT, answer)
            .await
            .expect("in time")
            .expect("task")
            .expect("answer");
        assert_eq!(status, 200, "{body}");
        assert!(body.contains(&format!("path=/fast/{i}\n")), "{body}");
    }
    let fast_done = t0.elapsed();
    assert!(
        fast_done < Duration::from_millis(500),
        "the fast streams waited for the slow one: {fast_done:?}"
    );
    let (status, _) = tokio::time::timeout(WAIT, slow)
        .await
        .expect("in time")
        .expect("task")
        .expect("slow answer");
    assert_eq!(status, 200);

    let hits = s.hits();
    let finishing = get("/slow/400").await;
    let outliving = get("/slow/5000").await;
    eventually("both requests at the server", WAIT, || s.hits() == hits + 2).await;
    drain_cuts_what_outlives_it(&p.proxy, finishing, outliving).await;
    conn.abort();
}

#[tokio::test]
async fn keep_alive_and_pipelining() {
    let s = TestServer::start("s").await;
    let p = start(
        vec![frontend(vec![], Some("be"))],
        vec![backend("be", &[&s])],
    );
    let two = b"GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let resp = raw(p.addr, two, Duration::from_secs(3)).await;
    assert_eq!(resp.matches("HTTP/1.1 200").count(), 2, "{resp}");
    let one = resp.find("path=/one").unwrap();
    let two = resp.find("path=/two").unwrap();
    assert!(one < two);
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Global, not per-thread: tracing caches callsite interest process-wide, and a scoped
/// subscriber races with the other tests of this binary registering the same callsites.
static LOGS: std::sync::OnceLock<Capture> = std::sync::OnceLock::new();

fn captured_logs() -> Capture {
    LOGS.get_or_init(|| {
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .without_time()
            .with_max_level(tracing::Level::INFO)
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        capture
    })
    .clone()
}

#[tokio::test]
async fn access_log_has_one_httplog_line_per_request() {
    let capture = captured_logs();
    let s = TestServer::start("web1").await;
    let p = start(
        vec![frontend(vec![], Some("site1"))],
        vec![backend("site1", &[&s])],
    );
    let c = client();
    let r = get(&c, &format!("{}/index.html?a=1", p.base)).await;
    assert_eq!(r.status, 200);
    eventually("log line written", Duration::from_secs(2), || {
        String::from_utf8_lossy(&capture.0.lock().unwrap()).contains("site1/web1")
    })
    .await;
    let logs = String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned();
    let line = logs.lines().find(|l| l.contains("site1/web1")).unwrap();
    assert!(line.contains("access:"), "{line}");
    assert!(line.contains(" www site1/web1 "), "{line}");
    assert!(line.contains(" 200 "), "{line}");
    assert!(line.contains(" - - ---- "), "{line}");
    assert!(line.ends_with("\"GET /index.html?a=1 HTTP/1.1\""), "{line}");
}

/// A "server" that reads the request and answers with `reply` (possibly nothing), then closes.
async fn broken_server(reply: &'static [u8]) -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut s, _)) = l.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(reply).await;
        }
    });
    addr
}

#[tokio::test]
async fn closed_or_garbage_response_gives_502() {
    for reply in [&b""[..], &b"HELLO WORLD\r\n\r\n"[..]] {
        let addr = broken_server(reply).await;
        let be = proxy::config::BackendConfig::new(
            "be",
            vec![proxy::config::ServerConfig::new("bad", addr)],
        );
        let p = start(vec![frontend(vec![], Some("be"))], vec![be]);
        let r = get(&client(), &format!("{}/", p.base)).await;
        assert_eq!(r.status, 502, "reply {reply:?}");
        assert_eq!(r.header("cache-control"), Some("no-cache"));
    }
}

#[tokio::test]
async fn require_available_falls_through_to_the_next_route() {
    let main = TestServer::start("main").await;
    let app = TestServer::start("app").await;
    let mut r = RouteConfig::new("app");
    r.path_prefix = Some("/app1".into());
    r.require_available = true;
    let mut app_be = backend("app", &[&app]);
    app_be.health_check = Some(fast_checks());
    let p = start(
        vec![frontend(vec![r], Some("main"))],
        vec![backend("main", &[&main]), app_be],
    );
    let c = client();
    let url = format!("{}/app1/x", p.base);
    assert_eq!(get(&c, &url).await.server(), "app");
    app.healthy
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let mut h = p.proxy.backend_health("app").unwrap();
    tokio::time::timeout(Duration::from_secs(3), h.wait_for(|h| h.up == 0))
        .await
        .expect("DOWN")
        .unwrap();
    assert_eq!(get(&c, &url).await.server(), "main");
}

#[tokio::test]
async fn post_body_is_forwarded() {
    let s = TestServer::start("s").await;
    let p = start(
        vec![frontend(vec![], Some("be"))],
        vec![backend("be", &[&s])],
    );
    let req = http::Request::post(format!("{}/form", p.base))
        .body(Full::new(Bytes::from_static(b"a=1&b=2")))
        .unwrap();
    let r = send(&client(), req).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body.contains("body=a=1&b=2\n"), "{}", r.body);
    assert!(r.body.contains("content-length: 7\n"), "{}", r.body);
}

#[tokio::test]
async fn post_body_survives_a_connect_retry_on_another_server() {
    let s = TestServer::start("alive").await;
    let gone: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut be = proxy::config::BackendConfig::new(
        "be",
        vec![
            proxy::config::ServerConfig::new("gone", gone),
            s.server_config(),
        ],
    );
    be.retries = 1;
    be.redispatch = true;
    let p = start(vec![frontend(vec![], Some("be"))], vec![be]);
    let c = client();
    for i in 0..4 {
        let req = http::Request::post(format!("{}/form", p.base))
            .body(Full::new(Bytes::from(format!("n={i}"))))
            .unwrap();
        let r = send(&c, req).await.unwrap();
        assert_eq!(r.status, 200);
        assert!(r.body.contains(&format!("body=n={i}\n")), "{}", r.body);
    }
    assert_eq!(s.hits(), 4);
}

#[tokio::test]
async fn access_log_reports_local_answers() {
    let capture = captured_logs();
    let mut f = proxy::config::FrontendConfig::new("logtest", vec!["127.0.0.1:0".parse().unwrap()]);
    f.timeouts = short_timeouts();
    let proxy = proxy::Proxy::start(proxy::config::ProxyConfig::new(vec![f], vec![])).unwrap();
    let addr = proxy.local_addrs("logtest")[0];
    let r = get(&client(), &format!("http://{addr}/nothing")).await;
    assert_eq!(r.status, 503);
    let _ = raw(
        addr,
        b"GET / HTTP/1.1\r\nHost: x\r\n",
        Duration::from_secs(3),
    )
    .await;
    let _ = raw(addr, b"BAD REQUEST LINE\r\n\r\n", Duration::from_secs(3)).await;
    let lines = || {
        String::from_utf8_lossy(&capture.0.lock().unwrap())
            .lines()
            .filter(|l| l.contains(" logtest logtest/<NOSRV> "))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    eventually("three log lines", Duration::from_secs(3), || {
        lines().len() >= 3
    })
    .await;
    let lines = lines();
    let find = |status: &str| {
        lines
            .iter()
            .find(|l| l.contains(&format!(" {status} ")))
            .unwrap_or_else(|| panic!("no {status} line in {lines:?}"))
            .clone()
    };
    assert!(find("503").contains(" SC-- "), "{lines:?}");
    assert!(
        find("503").ends_with("\"GET /nothing HTTP/1.1\""),
        "{lines:?}"
    );
    assert!(find("408").contains(" cR-- "), "{lines:?}");
    assert!(find("408").ends_with("\"<BADREQ>\""), "{lines:?}");
    assert!(find("400").contains(" PR-- "), "{lines:?}");
}
