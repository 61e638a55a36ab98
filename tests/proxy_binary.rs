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

    // Kill web1: DOWN after `fall` checks, and a bounded client loop across the kill sees
    // no error (retries + redispatch cover the window before the check notices).
    let t0 = Instant::now();
    let mut errors = 0;
    let mut served = 0;
    while served < 300 && t0.elapsed() < Duration::from_secs(20) {
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
    assert!(d.log().contains("Server web/web1 is DOWN"), "{}", d.log());
    println!("{served} requests across the kill of web1: {errors} errors");
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
