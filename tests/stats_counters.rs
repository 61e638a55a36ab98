//! The byte, time and session counters of the stats (HAProxy `bin`, `bout`, `rtime`,
//! `ttime`, `scur`, `stot`) read back after real traffic through the binary on loopback: an
//! HTTP frontend in front of a server that answers after 40 ms (GETs and POSTs with bodies
//! whose sizes are known to the byte), and a tcp-mode frontend in front of an echo server.
//! The numbers are read from the CSV, the JSON, the page and `/metrics` (through promtool).

mod common;

use common::{echo_server, free_port, LocalDaemon};

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;
use testkit::TempDir;

const SERVER_DELAY: Duration = Duration::from_millis(40);
const ANSWER_BODY: usize = 1000;

/// An HTTP/1.1 server that reads each request (head and Content-Length body), waits
/// [`SERVER_DELAY`] and answers 200 with a body of [`ANSWER_BODY`] bytes.
fn slow_http_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || serve_slow(s));
        }
    });
    addr
}

fn serve_slow(mut s: TcpStream) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < end + 4 + len {
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..end + 4 + len);
        std::thread::sleep(SERVER_DELAY);
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {ANSWER_BODY}\r\n\r\n{}",
            "a".repeat(ANSWER_BODY)
        );
        if s.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// Sends `request` on a fresh connection and reads to the end; the bytes received.
fn exchange(port: u16, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    s.write_all(request).expect("send");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// "admin:pw" in base64.
const AUTH: &str = "Authorization: Basic YWRtaW46cHc=\r\n";

fn stats_get(port: u16, path: &str) -> String {
    let r = exchange(
        port,
        format!("GET {path} HTTP/1.1\r\nHost: s\r\n{AUTH}Connection: close\r\n\r\n").as_bytes(),
    );
    let text = String::from_utf8_lossy(&r).into_owned();
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

/// CSV rows by (pxname, svname), each a map column -> cell.
fn csv(
    port: u16,
) -> std::collections::HashMap<(String, String), std::collections::HashMap<String, String>> {
    let text = stats_get(port, "/stats;csv");
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .trim_start_matches("# ")
        .split(',')
        .map(str::to_owned)
        .collect();
    lines
        .map(|l| {
            let row: std::collections::HashMap<String, String> = header
                .iter()
                .cloned()
                .zip(l.split(',').map(str::to_owned))
                .collect();
            let key = (
                row.get("pxname").cloned().unwrap_or_default(),
                row.get("svname").cloned().unwrap_or_default(),
            );
            (key, row)
        })
        .collect()
}

fn cell(
    rows: &std::collections::HashMap<(String, String), std::collections::HashMap<String, String>>,
    px: &str,
    sv: &str,
    col: &str,
) -> u64 {
    rows.get(&(px.to_owned(), sv.to_owned()))
        .and_then(|r| r.get(col))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no numeric {px}/{sv} {col} in {rows:?}"))
}

/// A sample's value in a Prometheus text scrape.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{series} missing"))
}

#[test]
fn bytes_times_and_tcp_sessions_are_counted_in_every_rendering() {
    let test = "bytes_times_and_tcp_sessions_are_counted_in_every_rendering";
    if !testkit::require_tool(test, "promtool") {
        return;
    }
    let dir = TempDir::new("stats-counters");
    let (web, echo) = (slow_http_server(), echo_server());
    let (http_port, tcp_port, stats) = (free_port(), free_port(), free_port());
    let cfg = format!(
        r#"global:
  log: {{ target: stderr, access_log: false }}
  stats: {{ bind: "127.0.0.1:{stats}", uri: /stats, auth: {{ user: admin, password: pw }} }}
frontends:
  - name: www
    bind: ["127.0.0.1:{http_port}"]
    default_backend: web
  - name: db
    mode: tcp
    bind: ["127.0.0.1:{tcp_port}"]
    default_backend: echo
backends:
  - name: web
    servers: [{{ name: w1, address: "{web}" }}]
  - name: echo
    mode: tcp
    servers: [{{ name: e1, address: "{echo}" }}]
"#
    );
    let _d = LocalDaemon::start(&dir, &cfg);
    // Waits on the stats only: a probe connection to the tcp frontend would be a session.
    assert!(
        testkit::wait_until(Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", stats)).is_ok()
                && csv(stats)
                    .get(&("db".to_owned(), "FRONTEND".to_owned()))
                    .is_some_and(|r| r["status"] == "OPEN")
        }),
        "vrrplb never listened: {}",
        std::fs::read_to_string(dir.join("lb.log")).unwrap_or_default()
    );

    // HTTP: 5 GETs and 3 POSTs with 5000-byte bodies; bin is the bytes sent, to the byte.
    let mut sent = 0u64;
    let mut received = 0u64;
    for i in 0..8 {
        let req = if i < 5 {
            format!("GET /item/{i}?q=1 HTTP/1.1\r\nHost: www.example.test\r\nUser-Agent: counters\r\nConnection: close\r\n\r\n")
        } else {
            format!(
                "POST /upload HTTP/1.1\r\nHost: www.example.test\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n{}",
                "b".repeat(5000)
            )
        };
        let answer = exchange(http_port, req.as_bytes());
        assert!(
            answer.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&answer)
        );
        sent += req.len() as u64;
        received += answer.len() as u64;
    }

    // tcp: one session held open (scur 1), then 3000 bytes each way.
    let mut held = TcpStream::connect(("127.0.0.1", tcp_port)).expect("connect tcp");
    held.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let payload = vec![b'x'; 3000];
    held.write_all(&payload).expect("send");
    let mut back = vec![0u8; 3000];
    held.read_exact(&mut back).expect("echo");
    let rows = csv(stats);
    assert_eq!(
        cell(&rows, "db", "FRONTEND", "scur"),
        1,
        "one open tcp session"
    );
    assert_eq!(cell(&rows, "echo", "e1", "scur"), 1);
    assert_eq!(cell(&rows, "echo", "BACKEND", "scur"), 1);
    std::thread::sleep(Duration::from_millis(300));
    held.shutdown(Shutdown::Write).expect("half-close");
    let mut rest = Vec::new();
    let _ = held.read_to_end(&mut rest);
    drop(held);
    assert!(
        testkit::wait_until(Duration::from_secs(5), || {
            cell(&csv(stats), "db", "FRONTEND", "scur") == 0
        }),
        "the tcp session never ended on the stats"
    );

    let rows = csv(stats);
    for (px, sv) in [("www", "FRONTEND"), ("web", "BACKEND"), ("web", "w1")] {
        assert_eq!(cell(&rows, px, sv, "bin"), sent, "{px}/{sv} bin");
        let bout = cell(&rows, px, sv, "bout");
        assert!(
            bout >= 8 * ANSWER_BODY as u64 && bout <= received,
            "{px}/{sv} bout {bout}: bodies {} .. received {received}",
            8 * ANSWER_BODY
        );
    }
    for (px, sv) in [("web", "BACKEND"), ("web", "w1")] {
        let rtime = cell(&rows, px, sv, "rtime");
        let ttime = cell(&rows, px, sv, "ttime");
        assert!(
            (40..1000).contains(&rtime) && ttime >= rtime,
            "{px}/{sv} rtime {rtime} ms ttime {ttime} ms (server answers after 40 ms)"
        );
        assert_eq!(rows[&(px.to_owned(), sv.to_owned())]["mode"], "http");
    }
    for (px, sv) in [("db", "FRONTEND"), ("echo", "BACKEND"), ("echo", "e1")] {
        assert_eq!(cell(&rows, px, sv, "bin"), 3000, "{px}/{sv} bin");
        assert_eq!(cell(&rows, px, sv, "bout"), 3000, "{px}/{sv} bout");
        assert_eq!(rows[&(px.to_owned(), sv.to_owned())]["mode"], "tcp");
    }
    assert_eq!(cell(&rows, "db", "FRONTEND", "stot"), 1);
    assert_eq!(cell(&rows, "echo", "e1", "stot"), 1);
    assert_eq!(cell(&rows, "echo", "BACKEND", "stot"), 1);
    assert_eq!(
        cell(&rows, "echo", "e1", "rtime"),
        0,
        "no response time in tcp mode"
    );
    let ttime = cell(&rows, "echo", "e1", "ttime");
    assert!(
        (300..5000).contains(&ttime),
        "e1 ttime {ttime} ms: one session held 300+ ms"
    );

    // JSON carries the same numbers.
    let json: serde_json::Value =
        serde_json::from_str(&stats_get(stats, "/stats;json")).expect("JSON");
    let web_b = &json["proxy"]["backends"][0];
    assert_eq!(web_b["name"], "web");
    assert_eq!(web_b["counters"]["bytes_in"], sent);
    assert!(web_b["counters"]["response_time_us"].as_u64().unwrap_or(0) >= 40_000);
    let echo_b = &json["proxy"]["backends"][1];
    assert_eq!(echo_b["servers"][0]["counters"]["bytes_out"], 3000);
    assert_eq!(json["proxy"]["frontends"][1]["tcp"], true);

    // The page shows bytes and the average times.
    let page = stats_get(stats, "/stats");
    assert!(
        page.contains(&format!("<td>{sent}</td>")),
        "bin on the page"
    );
    assert!(
        page.contains("Average over the last 1024: response time 4"),
        "rtime on the page"
    );

    // /metrics: promtool-valid, with the same values.
    let m = stats_get(stats, "/metrics");
    let mut p = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    p.stdin
        .take()
        .expect("stdin")
        .write_all(m.as_bytes())
        .expect("write");
    let out = p.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        metric(&m, "haproxy_frontend_bytes_in_total{proxy=\"www\"}"),
        sent as f64
    );
    assert_eq!(
        metric(&m, "haproxy_backend_bytes_in_total{proxy=\"echo\"}"),
        3000.0
    );
    assert_eq!(
        metric(
            &m,
            "haproxy_server_bytes_out_total{proxy=\"echo\",server=\"e1\"}"
        ),
        3000.0
    );
    let rt = metric(
        &m,
        "haproxy_backend_response_time_average_seconds{proxy=\"web\"}",
    );
    assert!((0.04..1.0).contains(&rt), "backend response time {rt} s");
    let rt = metric(
        &m,
        "haproxy_server_response_time_average_seconds{proxy=\"web\",server=\"w1\"}",
    );
    assert!((0.04..1.0).contains(&rt), "server response time {rt} s");
    assert!(
        metric(
            &m,
            "haproxy_server_total_time_average_seconds{proxy=\"echo\",server=\"e1\"}"
        ) >= 0.3
    );
    println!(
        "bin {sent} B over 8 HTTP requests, rtime {} ms; tcp 3000 B each way; promtool ok",
        cell(&rows, "web", "w1", "rtime")
    );
}
