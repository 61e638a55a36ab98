//! The balancer through the real binary (`vrrplb run` with a plain load-balancer config on
//! loopback): balancing, header handling, access log, health checks with failover, error
//! pages. The proxy crate's own tests cover each rule in depth; these prove the YAML reaches
//! it intact.

mod common;

use common::Backend;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};
use testkit::TempDir;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// One GET on a fresh connection: (status, body). Bounded by timeouts.
fn get(port: u16, path: &str, extra: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(2),
    )
    .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: www.example.test\r\n{extra}Connection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

struct Daemon {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl Daemon {
    fn start(dir: &TempDir, config: &str) -> Daemon {
        let cfg = dir.join("lb.yaml");
        std::fs::write(&cfg, config).expect("write config");
        let log = dir.join("lb.log");
        let f = std::fs::File::create(&log).expect("log");
        let child = std::process::Command::new(common::BIN)
            .args(["run", "-c"])
            .arg(&cfg)
            .stderr(f)
            .spawn()
            .expect("spawn vrrplb");
        Daemon { child, log }
    }
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(dir: &TempDir, port: u16, a: SocketAddr, b: SocketAddr) -> String {
    let page = dir.join("503.http");
    std::fs::write(&page, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/html\r\n\r\n<h1>vrrplb-test maintenance page</h1>\n").expect("page");
    format!(
        "global:\n  node: t\n  log: {{ target: stderr, access_log: true }}\n  control_socket: {sock}\n\
frontends:\n  - name: www\n    bind: [\"127.0.0.1:{port}\"]\n    forwarded_for: true\n    set_headers:\n      X-Client-IP: \"%[src]\"\n    default_backend: web\n    error_pages:\n      503: {page}\n\
backends:\n  - name: web\n    balance: roundrobin\n    retries: 3\n    redispatch: true\n    servers:\n      - {{ name: web1, address: \"{a}\" }}\n      - {{ name: web2, address: \"{b}\" }}\n    health_check: {{ kind: http, path: /, interval: 200ms, timeout: 100ms, rise: 2, fall: 2 }}\n",
        sock = dir.join("ctl.sock").display(),
        page = page.display()
    )
}

#[test]
fn binary_balances_rewrites_headers_logs_and_fails_over() {
    let dir = TempDir::new("proxy-bin");
    let (b1, b2) = (
        Backend::start("127.0.0.1:0", "web1"),
        Backend::start("127.0.0.1:0", "web2"),
    );
    let port = free_port();
    let d = Daemon::start(&dir, &config(&dir, port, b1.addr, b2.addr));
    assert!(
        testkit::wait_until(Duration::from_secs(10), || get(port, "/", "").is_some()),
        "never served:\n{}",
        d.log()
    );

    // Roundrobin: an even split.
    let (mut n1, mut n2) = (0, 0);
    for _ in 0..100 {
        let (status, body) = get(port, "/", "").expect("request");
        assert_eq!(status, 200);
        if body.starts_with("web1") {
            n1 += 1;
        } else if body.starts_with("web2") {
            n2 += 1;
        }
    }
    println!("roundrobin through the binary: web1 {n1}, web2 {n2}");
    assert_eq!((n1, n2), (50, 50));

    // Headers: X-Forwarded-For appended to the client's, X-Client-IP set, hop-by-hop gone.
    let (_, body) = get(
        port,
        "/h",
        "X-Forwarded-For: 203.0.113.7\r\nKeep-Alive: timeout=5\r\n",
    )
    .expect("request");
    let lower = body.to_ascii_lowercase();
    assert!(
        lower.contains("x-forwarded-for: 203.0.113.7, 127.0.0.1"),
        "{body}"
    );
    assert!(lower.contains("x-client-ip: 127.0.0.1"), "{body}");
    assert!(lower.contains("x-forwarded-proto: http"), "{body}");
    assert!(!lower.contains("keep-alive:"), "{body}");

    // Access log in HAProxy httplog shape.
    assert!(
        testkit::wait_until(Duration::from_secs(3), || d
            .log()
            .contains("\"GET /h HTTP/1.1\"")),
        "{}",
        d.log()
    );
    let line = d
        .log()
        .lines()
        .find(|l| l.contains("\"GET /h HTTP/1.1\""))
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(line.contains(" www web/web"), "{line}");
    assert!(line.contains(" 200 "), "{line}");

    // Kill web1: DOWN after `fall` checks, and a bounded client loop across the kill, until
    // the checks have marked it DOWN, sees no error (retries + redispatch cover the window
    // before the check notices; redispatch moves a retry at once, so 300 requests can end
    // before the second failed check).
    let t0 = Instant::now();
    let mut errors = 0;
    let mut served = 0;
    let down = || d.log().contains("Server web/web1 is DOWN");
    while (served < 300 || !down()) && t0.elapsed() < Duration::from_secs(20) {
        if served == 50 {
            b1.kill();
        }
        match get(port, "/", "") {
            Some((200, _)) => {}
            other => {
                errors += 1;
                eprintln!("request {served}: {other:?}");
            }
        }
        served += 1;
    }
    assert!(down(), "{}", d.log());
    println!("{served} requests across the kill of web1 until DOWN: {errors} errors");
    assert_eq!(errors, 0);

    // Both gone: 503 with the configured page.
    b2.kill();
    assert!(
        testkit::wait_until(Duration::from_secs(5), || d
            .log()
            .contains("backend web has no server available!")),
        "{}",
        d.log()
    );
    let (status, body) = get(port, "/", "").expect("request");
    assert_eq!(status, 503);
    assert!(body.contains("vrrplb-test maintenance page"), "{body}");
}

/// Sends raw bytes on a fresh connection and reads until the server closes (bounded).
fn raw(port: u16, bytes: &[u8], wait: Duration) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(wait));
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn binary_routes_strips_redirects_persists_and_answers_errors_from_yaml() {
    let dir = TempDir::new("proxy-bin-http");
    let (site, app1a, app1b) = (
        Backend::start("127.0.0.1:0", "site"),
        Backend::start("127.0.0.1:0", "app1a"),
        Backend::start("127.0.0.1:0", "app1b"),
    );
    // A server that accepts and never answers: 504 at timeouts.server.
    let mute = TcpListener::bind("127.0.0.1:0").expect("mute");
    let mute_addr = mute.local_addr().expect("addr");
    let port = free_port();
    let cfg = [
        "global:".to_owned(),
        "  log: { target: stderr }".to_owned(),
        format!("  control_socket: {}", dir.join("ctl.sock").display()),
        "frontends:".to_owned(),
        "  - name: www".to_owned(),
        format!("    bind: [\"127.0.0.1:{port}\"]"),
        "    timeouts: { http_request: 1s }".to_owned(),
        "    routes:".to_owned(),
        "      - { match: { host: \"*.example.test\", path_prefix: /slow }, backend: mute }"
            .to_owned(),
        "      - { match: { path_prefix: /app1/ }, backend: app1, strip_prefix: true }".to_owned(),
        "      - { match: { host: site.example.test }, backend: site }".to_owned(),
        "backends:".to_owned(),
        "  - name: site".to_owned(),
        format!("    servers: [{{ name: s1, address: \"{}\" }}]", site.addr),
        "  - name: app1".to_owned(),
        "    cookie: { name: SRV, indirect: true, nocache: true }".to_owned(),
        format!(
            "    servers: [{{ name: a, address: \"{}\" }}, {{ name: b, address: \"{}\" }}]",
            app1a.addr, app1b.addr
        ),
        "  - name: mute".to_owned(),
        "    timeouts: { server: 700ms }".to_owned(),
        format!("    servers: [{{ name: m, address: \"{mute_addr}\" }}]"),
    ]
    .join("\n");
    let d = Daemon::start(&dir, &cfg);
    let req = |path: &str, host: &str, extra: &str| {
        raw(
            port,
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n")
                .as_bytes(),
            Duration::from_secs(3),
        )
    };
    assert!(
        testkit::wait_until(Duration::from_secs(10), || req(
            "/",
            "site.example.test",
            ""
        )
        .contains("200 OK")),
        "never served:\n{}",
        d.log()
    );

    // Host routing (case-insensitive, port ignored); no route and no default: 503.
    assert!(req("/x", "SITE.example.test:8080", "").contains("\r\n\r\nsite\n"));
    assert!(req("/x", "other.test", "").starts_with("HTTP/1.1 503"));

    // Path prefix with strip: the backend sees /x?q; the bare prefix is redirected.
    let r = req("/app1/x?q=1", "any.test", "");
    assert!(r.contains("GET /x?q=1 HTTP/1.1"), "{r}");
    let r = req("/app1?lang=fr", "any.test", "");
    assert!(
        r.starts_with("HTTP/1.1 301")
            && r.to_ascii_lowercase().contains("location: /app1/?lang=fr"),
        "{r}"
    );

    // Cookie persistence: inserted once, then honoured; removed before the server (indirect).
    let r = req("/app1/", "any.test", "");
    let lower = r.to_ascii_lowercase();
    let set = lower
        .lines()
        .find(|l| l.starts_with("set-cookie: srv="))
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(set.contains("path=/"), "{r}");
    assert!(lower.contains("cache-control: private"), "nocache: {r}");
    let value = set
        .trim_start_matches("set-cookie: srv=")
        .split(';')
        .next()
        .unwrap_or("")
        .to_owned();
    let server = if value == "a" { "app1a" } else { "app1b" };
    for _ in 0..6 {
        let r = req(
            "/app1/",
            "any.test",
            &format!("Cookie: SRV={value}; theme=dark\r\n"),
        );
        assert!(
            r.contains(&format!("\r\n\r\n{server}\n")),
            "persistence broken: {r}"
        );
        assert!(
            !r.to_ascii_lowercase().contains("srv="),
            "cookie reached the server or was re-set: {r}"
        );
        assert!(r.contains("theme=dark"), "other cookies must pass: {r}");
    }

    // 504 from a server that never answers, at timeouts.server.
    let t = std::time::Instant::now();
    let r = req("/slow", "a.example.test", "");
    assert!(r.starts_with("HTTP/1.1 504"), "{r}");
    println!("504 after {:?} (timeouts.server 700ms)", t.elapsed());

    // Slowloris: headers never finished within http_request (1 s) → 408, then close.
    let t = std::time::Instant::now();
    let r = raw(
        port,
        b"GET / HTTP/1.1\r\nHost: site.example.test\r\nX-Slow: ",
        Duration::from_secs(5),
    );
    assert!(r.starts_with("HTTP/1.1 408"), "{r}");
    println!("408 after {:?} (http_request 1s)", t.elapsed());

    // A malformed request: 400 and the connection closes.
    let r = raw(port, b"NOT A REQUEST\r\n\r\n", Duration::from_secs(3));
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");

    // Every exchange left an access-log line; the 503 and 408 carry HAProxy's flags.
    let log = d.log();
    assert!(
        log.contains(" www www/<NOSRV> ") || log.contains("<NOSRV>"),
        "{log}"
    );
    assert!(log.contains("SC--"), "{log}");
    assert!(log.contains("cR--"), "{log}");
    drop(mute);
}
