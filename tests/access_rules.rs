//! Frontend `monitor_uri`, `del_headers`, `rules` and backend `set_headers` through the
//! binary on loopback (issue 14 §4, HAProxy `monitor-uri`, `http-request del-header`,
//! `http-request deny|allow`, `tcp-request content reject`, backend `http-request
//! set-header`). Clients connect from 127.0.0.1, .2 and .3 so the `src` rules see three
//! different addresses.

mod common;

use common::{echo_server, free_port, Backend, LocalDaemon};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;
use testkit::TempDir;

/// A connection to 127.0.0.1:`port` from `from` (a loopback address).
fn connect_from(from: [u8; 4], port: u16) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let s = rt
        .block_on(async {
            let sock = tokio::net::TcpSocket::new_v4()?;
            sock.bind(SocketAddr::from((from, 0)))?;
            sock.connect(SocketAddr::from(([127, 0, 0, 1], port))).await
        })
        .expect("connect");
    let s = s.into_std().expect("std socket");
    s.set_nonblocking(false).expect("blocking");
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    s
}

/// One request from `from`; (status, body).
fn request(from: [u8; 4], port: u16, method: &str, path: &str, extra: &str) -> (u16, String) {
    let mut s = connect_from(from, port);
    let body = if method == "POST" {
        "Content-Length: 0\r\n"
    } else {
        ""
    };
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: www.example.test\r\n{extra}{body}Connection: close\r\n\r\n"
    )
    .expect("send");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// "admin:pw" in base64.
const AUTH: &str = "Authorization: Basic YWRtaW46cHc=\r\n";

/// One numeric cell of the stats CSV.
fn csv_cell(stats: u16, px: &str, sv: &str, column: &str) -> Option<u64> {
    let mut s = TcpStream::connect(("127.0.0.1", stats)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET /stats;csv HTTP/1.1\r\nHost: s\r\n{AUTH}Connection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (_, body) = text.split_once("\r\n\r\n")?;
    let mut lines = body.lines();
    let header: Vec<&str> = lines.next()?.trim_start_matches("# ").split(',').collect();
    let i = header.iter().position(|c| *c == column)?;
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|r| r.first() == Some(&px) && r.get(1) == Some(&sv))?
        .get(i)?
        .parse()
        .ok()
}

#[test]
fn monitor_uri_rules_and_header_operations_on_live_traffic() {
    let dir = TempDir::new("access-rules");
    let web = Backend::start("127.0.0.1:0", "web1");
    let echo = echo_server();
    let (www, mon, db, stats, dead) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let cfg = format!(
        r#"global:
  log: {{ target: stderr }}
  stats: {{ bind: "127.0.0.1:{stats}", uri: /stats, auth: {{ user: admin, password: pw }} }}
frontends:
  - name: www
    bind: ["127.0.0.1:{www}"]
    forwarded_for: true
    monitor_uri: /healthz
    del_headers: [X-Forwarded-For, X-Secret]
    set_headers: {{ X-Fe: fe }}
    rules:
      - match: {{ src: ["127.0.0.2/32"] }}
        allow: true
      - match: {{ method: [POST, PUT], path_prefix: /admin/ }}
        deny: 403
      - match: {{ src: ["127.0.0.3", "2001:db8::/32"] }}
        deny: 429
    default_backend: web
  - name: mon
    bind: ["127.0.0.1:{mon}"]
    monitor_uri: /up
    default_backend: later
  - name: db
    mode: tcp
    bind: ["127.0.0.1:{db}"]
    rules:
      - match: {{ src: ["127.0.0.3/32"] }}
        deny: 403
    default_backend: echo
backends:
  - name: web
    set_headers: {{ X-Backend: web, X-Client: "%[src]" }}
    servers: [{{ name: web1, address: "{web}" }}]
  - name: later
    servers: [{{ name: s1, address: "127.0.0.1:{dead}" }}]
    health_check: {{ kind: tcp, interval: 100ms, timeout: 100ms, rise: 1, fall: 1 }}
  - name: echo
    mode: tcp
    servers: [{{ name: e1, address: "{echo}" }}]
"#,
        web = web.addr
    );
    let path = dir.join("lb.yaml");
    std::fs::write(&path, &cfg).expect("config");
    let check = Command::new(common::BIN)
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .expect("check");
    assert!(
        check.status.success(),
        "check: {}",
        String::from_utf8_lossy(&check.stdout)
    );
    let d = LocalDaemon::start(&dir, &cfg);
    let log_text = || d.log();
    assert!(
        testkit::wait_until(Duration::from_secs(10), || csv_cell(
            stats, "db", "FRONTEND", "scur"
        )
        .is_some()),
        "vrrplb never served: {}",
        log_text()
    );

    // monitor_uri: answered here, not by the server, and never logged.
    let (s, body) = request([127, 0, 0, 1], www, "GET", "/healthz", "");
    assert_eq!(s, 200);
    assert!(
        body.contains("Service ready") && !body.contains("web1"),
        "{body}"
    );
    let (s, _) = request([127, 0, 0, 1], www, "GET", "/healthz?full=1", "");
    assert_eq!(s, 200, "the query is not part of the path");
    // A POST to the monitor path is still the monitor (HAProxy intercepts any method).
    assert_eq!(request([127, 0, 0, 1], www, "POST", "/healthz", "").0, 200);
    let (s, body) = request([127, 0, 0, 1], www, "GET", "/healthz/x", "");
    assert_eq!(
        (s, body.starts_with("web1")),
        (200, true),
        "only the exact path"
    );
    // mon's only backend has no server UP: 503, then 200 once one listens.
    assert!(testkit::wait_until(Duration::from_secs(5), || request(
        [127, 0, 0, 1],
        mon,
        "GET",
        "/up",
        ""
    )
    .0 == 503));
    let late = TcpListener::bind(("127.0.0.1", dead)).expect("bind the late server");
    assert!(
        testkit::wait_until(Duration::from_secs(5), || request(
            [127, 0, 0, 1],
            mon,
            "GET",
            "/up",
            ""
        )
        .0 == 200),
        "monitor_uri never 200 with a server UP"
    );
    drop(late);

    // rules: first match wins.
    let (s, body) = request([127, 0, 0, 1], www, "POST", "/admin/users", "");
    assert_eq!(s, 403, "{body}");
    assert!(body.contains("403 Forbidden") && !body.contains("web1"));
    assert_eq!(request([127, 0, 0, 1], www, "PUT", "/admin/x", "").0, 403);
    let (s, body) = request([127, 0, 0, 1], www, "GET", "/admin/users", "");
    assert_eq!(
        (s, body.starts_with("web1")),
        (200, true),
        "GET is not denied"
    );
    let (s, body) = request([127, 0, 0, 1], www, "POST", "/public", "");
    assert_eq!(
        (s, body.starts_with("web1")),
        (200, true),
        "other paths pass"
    );
    let (s, body) = request([127, 0, 0, 2], www, "POST", "/admin/users", "");
    assert_eq!(
        (s, body.starts_with("web1")),
        (200, true),
        "127.0.0.2 is allowed before the deny"
    );
    let (s, body) = request([127, 0, 0, 3], www, "GET", "/", "");
    assert_eq!(s, 429, "{body}");
    assert!(!body.contains("web1"));

    // Header operations: del_headers before forwarded_for and set_headers; backend last.
    let (s, body) = request(
        [127, 0, 0, 1],
        www,
        "GET",
        "/h",
        "X-Forwarded-For: 203.0.113.66\r\nX-Secret: s3cret\r\nX-Backend: forged\r\n",
    );
    assert_eq!(s, 200);
    let head = body.to_ascii_lowercase();
    assert!(
        !head.contains("x-secret") && !head.contains("s3cret"),
        "{body}"
    );
    assert!(!head.contains("203.0.113.66"), "client XFF deleted: {body}");
    assert_eq!(
        head.matches("x-forwarded-for: 127.0.0.1\r\n").count(),
        1,
        "{body}"
    );
    assert_eq!(head.matches("x-backend:").count(), 1, "{body}");
    assert!(head.contains("x-backend: web\r\n"), "{body}");
    assert!(head.contains("x-client: 127.0.0.1\r\n"), "{body}");
    assert!(head.contains("x-fe: fe\r\n"), "{body}");

    // tcp mode: only src; a denied client is closed without a byte.
    let mut c = connect_from([127, 0, 0, 1], db);
    c.write_all(b"ping").expect("send");
    let mut back = [0u8; 4];
    c.read_exact(&mut back).expect("echo");
    assert_eq!(&back, b"ping");
    drop(c);
    let mut c = connect_from([127, 0, 0, 3], db);
    let _ = c.write_all(b"ping");
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    assert!(got.is_empty(), "a denied tcp client got {got:?}");

    // Counted as denied requests; the monitor is not logged, the denials are (PR--).
    assert!(testkit::wait_until(Duration::from_secs(5), || {
        csv_cell(stats, "db", "FRONTEND", "dreq") == Some(1)
    }));
    assert_eq!(csv_cell(stats, "www", "FRONTEND", "dreq"), Some(3));
    let text = log_text();
    for monitor in [
        "GET /healthz ",
        "GET /healthz?",
        "POST /healthz ",
        "GET /up",
    ] {
        assert!(!text.contains(monitor), "{monitor} logged:\n{text}");
    }
    assert!(text.contains("GET /healthz/x "), "{text}");
    assert_eq!(text.matches(" 403 ").count(), 2, "{text}");
    assert!(text.contains(" 429 ") && text.contains("PR--"), "{text}");
    assert!(text.contains("www web/web1"), "{text}");
    println!(
        "monitor_uri 200/503, 3 HTTP and 1 tcp denial counted in dreq, headers deleted and set"
    );
}

#[test]
fn check_refuses_bad_screening_keys_with_their_paths() {
    let dir = TempDir::new("access-rules-check");
    let cfg = r#"frontends:
  - name: www
    bind: ["127.0.0.1:18080"]
    monitor_uri: healthz
    del_headers: ["Bad Header"]
    rules:
      - match: { src: ["203.0.113.0/33"], method: ["PO ST"], path_prefix: admin }
        deny: 418
      - match: { src: ["198.51.100.1"] }
      - deny: 403
        allow: true
    default_backend: web
  - name: db
    mode: tcp
    bind: ["127.0.0.1:18081"]
    monitor_uri: /x
    rules:
      - match: { path_prefix: /a }
        deny: 403
    default_backend: echo
backends:
  - name: web
    set_headers: { "X Bad": "%[nope]" }
    servers: [{ name: s1, address: "127.0.0.1:18082" }]
  - name: echo
    mode: tcp
    set_headers: { X-A: a }
    servers: [{ name: e1, address: "127.0.0.1:18083" }]
"#;
    let path = dir.join("bad.yaml");
    std::fs::write(&path, cfg).expect("config");
    let out = Command::new(common::BIN)
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .expect("check");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    for needle in [
        "frontends[0].monitor_uri",
        "frontends[0].del_headers[0]",
        "frontends[0].rules[0].match.src[0]",
        "frontends[0].rules[0].match.method[0]",
        "frontends[0].rules[0].match.path_prefix",
        "frontends[0].rules[0].deny",
        "frontends[0].rules[1]",
        "frontends[0].rules[2]",
        "frontends[1].monitor_uri",
        "frontends[1].rules[0].match",
        "backends[0].set_headers.X Bad",
        "backends[1].set_headers",
    ] {
        assert!(text.contains(needle), "{needle} not reported:\n{text}");
    }
}
