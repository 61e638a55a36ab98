//! The stats listener through the real binary on loopback, read by real consumers: curl-like
//! raw requests for auth (401 with realm on every path), 404, 405; the CSV header compared
//! with the one HAProxy 2.6 itself emits and the rows read by Python's csv module;
//! `promtool check metrics` on a live scrape; a headless Chromium rendering of the page with a
//! server DOWN; `vrrplb status --json`; counters that only go up across a SIGHUP reload; the
//! CPU cost of a scrape with 100 servers; 1000 hoarded stats connections.

mod common;

use common::{free_port, Backend, LocalDaemon};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testkit::TempDir;

/// One raw HTTP/1.1 exchange on a fresh connection: (status, head, body). Bounded.
fn raw(port: u16, request: &str) -> Option<(u16, String, String)> {
    let mut s = TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(2),
    )
    .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(request.as_bytes()).ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    Some((status, head.to_owned(), body.to_owned()))
}

/// "admin:s3cret" in base64.
const GOOD_AUTH: &str = "Authorization: Basic YWRtaW46czNjcmV0\r\n";

fn get(port: u16, path: &str, auth: bool) -> Option<(u16, String, String)> {
    let a = if auth { GOOD_AUTH } else { "" };
    raw(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: stats\r\n{a}Connection: close\r\n\r\n"),
    )
}

fn config(dir: &TempDir, fe_port: u16, stats_port: u16, up: SocketAddr, down: u16) -> String {
    format!(
        "global:\n  node: stats-node\n  log: {{ target: stderr, access_log: false }}\n  control_socket: {sock}\n  stats:\n    bind: \"127.0.0.1:{stats_port}\"\n    uri: /haproxy?stats\n    refresh: 7s\n    show_node: true\n    realm: \"Lab Stats\"\n    auth: {{ user: admin, password: s3cret }}\n\
frontends:\n  - name: www\n    bind: [\"127.0.0.1:{fe_port}\"]\n    default_backend: web\n\
backends:\n  - name: web\n    servers:\n      - {{ name: web1, address: \"{up}\" }}\n      - {{ name: web2, address: \"127.0.0.1:{down}\" }}\n    health_check: {{ kind: tcp, interval: 200ms, timeout: 100ms, rise: 2, fall: 2 }}\n",
        sock = dir.join("ctl.sock").display(),
    )
}

/// The `show stat` header of the HAProxy installed here (2.6 on Debian 12), from a real
/// haproxy process with a stats socket.
fn haproxy_csv_header(dir: &TempDir) -> Option<String> {
    let sock = dir.join("haproxy.sock");
    let pidfile = dir.join("haproxy.pid");
    let cfg = dir.join("haproxy.cfg");
    let port = free_port();
    std::fs::write(
        &cfg,
        format!(
            "global\n  stats socket {}\ndefaults\n  mode http\n  timeout connect 1s\n  timeout client 1s\n  timeout server 1s\nfrontend fe\n  bind 127.0.0.1:{port}\n  default_backend be\nbackend be\n  server s1 127.0.0.1:9\n",
            sock.display()
        ),
    )
    .ok()?;
    let mut child = Command::new("haproxy")
        .arg("-f")
        .arg(&cfg)
        .arg("-p")
        .arg(&pidfile)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut header = None;
    if testkit::wait_until(Duration::from_secs(5), || sock.exists()) {
        if let Ok(mut s) = std::os::unix::net::UnixStream::connect(&sock) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
            let _ = s.write_all(b"show stat\n");
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            header = out.lines().next().map(str::to_owned);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    header
}

/// Runs `python3 -c SCRIPT` with `input` on stdin; (success, stdout+stderr).
fn python(script: &str, input: &str) -> (bool, String) {
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes());
    }
    let out = child.wait_with_output().expect("python3 output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn stats_listener_serves_page_csv_json_metrics_to_real_consumers() {
    let test = "stats_listener_serves_page_csv_json_metrics_to_real_consumers";
    for tool in ["haproxy", "promtool", "python3", "chromium"] {
        if !testkit::require_tool(test, tool) {
            return;
        }
    }
    let dir = TempDir::new("stats-page");
    let up = Backend::start("127.0.0.1:0", "web1");
    let (fe, stats, down) = (free_port(), free_port(), free_port());
    let d = LocalDaemon::start(&dir, &config(&dir, fe, stats, up.addr, down));
    // Seed 001's `stats uri /haproxy?stats`: the query is part of the match, as in HAProxy.
    let page = "/haproxy?stats";
    assert!(
        testkit::wait_until(Duration::from_secs(10), || {
            get(stats, &format!("{page};csv"), true).is_some_and(|(s, _, b)| {
                s == 200 && b.contains("web,web2,") && b.contains(",DOWN,")
            })
        }),
        "web2 never DOWN on the CSV:\n{}",
        d.log()
    );
    for _ in 0..20 {
        let r = raw(
            fe,
            "GET / HTTP/1.1\r\nHost: www.example.test\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(r.map(|r| r.0), Some(200));
    }

    // Auth on every path, with the realm; 404, 405, HEAD.
    for path in [page, "/metrics", "/nowhere", "/haproxy?stats;csv"] {
        let (s, head, body) = get(stats, path, false).expect("answer");
        assert_eq!(s, 401, "{path}: {head}");
        assert!(
            head.contains("www-authenticate: Basic realm=\"Lab Stats\""),
            "{head}"
        );
        assert!(!body.contains("web1"), "no data without credentials");
    }
    let wrong = raw(
        stats,
        "GET /metrics HTTP/1.1\r\nAuthorization: Basic YWRtaW46d3Jvbmc=\r\nConnection: close\r\n\r\n",
    )
    .expect("answer");
    assert_eq!(wrong.0, 401, "wrong password");
    assert_eq!(get(stats, "/nowhere", true).map(|r| r.0), Some(404));
    assert_eq!(get(stats, "/haproxyx", true).map(|r| r.0), Some(404));
    let post = raw(
        stats,
        &format!(
            "POST {page} HTTP/1.1\r\n{GOOD_AUTH}Content-Length: 0\r\nConnection: close\r\n\r\n"
        ),
    )
    .expect("answer");
    assert_eq!(post.0, 405);
    assert!(post.1.contains("allow: GET, HEAD"), "{}", post.1);
    let body = raw(
        stats,
        &format!(
            "GET {page} HTTP/1.1\r\n{GOOD_AUTH}Content-Length: 5\r\nConnection: close\r\n\r\nhello"
        ),
    )
    .expect("answer");
    assert_eq!(body.0, 405, "a GET with a body");
    let head = raw(
        stats,
        &format!("HEAD {page} HTTP/1.1\r\n{GOOD_AUTH}Connection: close\r\n\r\n"),
    )
    .expect("answer");
    assert_eq!(head.0, 200);
    assert!(head.2.is_empty(), "HEAD has no body");

    // HTML: refresh header, node, VRRP-less page with both servers.
    let (s, h, html) = get(stats, page, true).expect("page");
    assert_eq!(s, 200);
    assert!(h.contains("refresh: 7"), "{h}");
    assert!(html.contains("stats-node") && html.contains("/haproxy?stats;norefresh"));
    let (_, h2, _) = get(stats, &format!("{page};norefresh"), true).expect("page");
    assert!(!h2.contains("refresh:"), "{h2}");

    // CSV: HAProxy's own header, column for column, and rows a csv parser reads.
    let ours = get(stats, &format!("{page};csv"), true).expect("csv").2;
    let theirs = haproxy_csv_header(&dir).expect("haproxy's CSV header");
    let our_header = ours.lines().next().unwrap_or_default();
    assert!(
        theirs.starts_with(our_header),
        "our header is not a prefix of HAProxy's:\nours:   {our_header}\nhaproxy: {theirs}"
    );
    let script = "import csv,sys\nlines=sys.stdin.read().splitlines()\nassert lines[0].startswith('# ')\nrows=list(csv.DictReader([lines[0][2:]]+lines[1:]))\nby={(r['pxname'],r['svname']):r for r in rows}\nassert by[('web','web2')]['status']=='DOWN', by[('web','web2')]\nassert by[('web','web1')]['status']=='UP'\nassert int(by[('web','web2')]['chkfail'])>=1\nassert int(by[('www','FRONTEND')]['req_tot'])>=20, by[('www','FRONTEND')]\nassert int(by[('www','FRONTEND')]['hrsp_2xx'])>=20\nassert int(by[('web','web1')]['lbtot'])>=20\nassert by[('web','BACKEND')]['algo']=='roundrobin'\nprint('csv ok', len(rows), 'rows')\n";
    let (ok, out) = python(script, &ours);
    assert!(ok, "python csv: {out}\n{ours}");
    println!("{}", out.trim());

    // /metrics through promtool.
    let (s, h, metrics) = get(stats, "/metrics", true).expect("metrics");
    assert_eq!(s, 200);
    assert!(h.contains("text/plain; version=0.0.4"), "{h}");
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
        .write_all(metrics.as_bytes())
        .expect("write");
    let out = p.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "haproxy_frontend_http_requests_total{proxy=\"www\"}",
        "haproxy_server_status{proxy=\"web\",server=\"web2\",state=\"DOWN\"} 1",
        "haproxy_backend_active_servers{proxy=\"web\"} 1",
        "haproxy_backend_http_responses_total{proxy=\"web\",code=\"2xx\"}",
        "haproxy_server_check_failures_total{proxy=\"web\",server=\"web2\"}",
    ] {
        assert!(metrics.contains(needle), "{needle} missing:\n{metrics}");
    }
    println!(
        "promtool check metrics: ok ({} series)",
        metrics.lines().filter(|l| !l.starts_with('#')).count()
    );

    // JSON, and `vrrplb status --json` with the same data.
    let json: serde_json::Value =
        serde_json::from_str(&get(stats, &format!("{page};json"), true).expect("json").2)
            .expect("valid JSON");
    assert_eq!(json["node"], "stats-node");
    assert_eq!(json["proxy"]["backends"][0]["servers"][1]["status"], "DOWN");
    let st = Command::new(common::BIN)
        .args(["status", "--json", "-c"])
        .arg(d.config_path())
        .output()
        .expect("status --json");
    let sj: serde_json::Value = serde_json::from_slice(&st.stdout).expect("status --json JSON");
    assert_eq!(sj["proxy"]["backends"][0]["servers"][1]["name"], "web2");
    assert_eq!(sj["proxy"]["backends"][0]["servers"][1]["status"], "DOWN");
    let text = Command::new(common::BIN)
        .args(["status", "-c"])
        .arg(d.config_path())
        .output()
        .expect("status");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("backend web up 1/2"), "{text}");
    assert!(
        text.contains("server web2") && text.contains("DOWN"),
        "{text}"
    );

    // Headless Chromium: the page renders offline and shows web2's row DOWN.
    let shot = dir.join("stats.png");
    let out = common::run_with_timeout(
        {
            let mut c = Command::new("chromium");
            c.args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--window-size=1400,700",
            ])
            .arg(format!("--screenshot={}", shot.display()))
            .arg(format!("http://admin:s3cret@127.0.0.1:{stats}{page}"));
            c
        },
        Duration::from_secs(60),
    );
    let png = std::fs::read(&shot).unwrap_or_default();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "no screenshot ({} bytes): {}",
        png.len(),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = common::run_with_timeout(
        {
            let mut c = Command::new("chromium");
            c.args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
                .arg(format!("http://admin:s3cret@127.0.0.1:{stats}{page}"));
            c
        },
        Duration::from_secs(60),
    );
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("<tr class=\"active_down\" id=\"web/web2\">"),
        "Chromium's DOM has no DOWN row for web2:\n{dom}"
    );
    assert!(dom.contains("<tr class=\"active_up\" id=\"web/web1\">"));
    println!(
        "chromium: screenshot {} bytes, DOM shows web2 DOWN",
        png.len()
    );
    if let Ok(keep) = std::env::var("VRRPLB_STATS_SCREENSHOT") {
        let _ = std::fs::copy(&shot, keep);
    }

    // Counters only go up across a reload (the balancer is rebuilt: new frontend maxconn).
    let before = csv_field(stats, "www", "FRONTEND", "req_tot");
    let cfg = std::fs::read_to_string(d.config_path()).expect("config");
    std::fs::write(
        d.config_path(),
        cfg.replace(
            "    default_backend: web\n",
            "    maxconn: 500\n    default_backend: web\n",
        ),
    )
    .expect("rewrite");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(d.pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .expect("hup");
    assert!(
        testkit::wait_until(Duration::from_secs(10), || d
            .log()
            .contains("balancer reloaded")),
        "{}",
        d.log()
    );
    assert!(testkit::wait_until(Duration::from_secs(5), || csv_field(
        stats, "www", "FRONTEND", "slim"
    ) == 500));
    let after = csv_field(stats, "www", "FRONTEND", "req_tot");
    assert!(
        before >= 20 && after >= before,
        "req_tot {before} -> {after} across the reload"
    );
    println!("req_tot across SIGHUP: {before} -> {after}");
}

/// One numeric CSV cell (0 when missing).
fn csv_field(port: u16, px: &str, sv: &str, column: &str) -> u64 {
    let Some((_, _, csv)) = get(port, "/haproxy?stats;csv", true) else {
        return 0;
    };
    let mut lines = csv.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .trim_start_matches("# ")
        .split(',')
        .collect();
    let Some(i) = header.iter().position(|c| *c == column) else {
        return 0;
    };
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|r| r.first() == Some(&px) && r.get(1) == Some(&sv))
        .and_then(|r| r.get(i).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// CPU time of a process so far, from /proc/PID/schedstat (ns).
fn cpu_ns(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

#[test]
fn a_scrape_of_100_servers_costs_under_a_millisecond_and_hoarders_are_bounded() {
    let dir = TempDir::new("stats-cost");
    let (fe1, fe2, stats) = (free_port(), free_port(), free_port());
    let up = Backend::start("127.0.0.1:0", "web1");
    let mut cfg = format!(
        "global:\n  node: cost\n  log: {{ target: stderr, access_log: false }}\n  control_socket: {}\n  stats: {{ bind: \"127.0.0.1:{stats}\", maxconn: 50 }}\nfrontends:\n  - {{ name: a, bind: [\"127.0.0.1:{fe1}\"], default_backend: b0 }}\n  - {{ name: b, bind: [\"127.0.0.1:{fe2}\"], default_backend: b1 }}\nbackends:\n",
        dir.join("ctl.sock").display()
    );
    for b in 0..4 {
        cfg.push_str(&format!("  - name: b{b}\n    servers:\n"));
        for s in 0..25 {
            cfg.push_str(&format!(
                "      - {{ name: s{s}, address: \"{}\" }}\n",
                up.addr
            ));
        }
    }
    let d = LocalDaemon::start(&dir, &cfg);
    assert!(
        testkit::wait_until(Duration::from_secs(10), || get(stats, "/metrics", false)
            .is_some_and(|r| r.0 == 200)),
        "{}",
        d.log()
    );
    // Warm up, then measure the daemon's own CPU over many scrapes of each kind.
    for path in ["/metrics", "/stats", "/stats;csv", "/stats;json"] {
        let _ = get(stats, path, false);
        let n = 100;
        let t0 = cpu_ns(d.pid());
        let mut bytes = 0;
        for _ in 0..n {
            let (s, _, b) = get(stats, path, false).expect("scrape");
            assert_eq!(s, 200);
            bytes = b.len();
        }
        let per = (cpu_ns(d.pid()) - t0) / n;
        println!(
            "{path}: {bytes} bytes, {:.3} ms CPU per scrape (2 frontends, 4 backends, 100 servers)",
            per as f64 / 1e6
        );
        // The 1 ms budget is for an optimised build; a debug build formats ~10x slower.
        let budget = if cfg!(debug_assertions) {
            25_000_000
        } else {
            1_000_000
        };
        assert!(per < budget, "{path}: {per} ns per scrape");
    }

    // 1000 connections held open without a request: the balancer answers at once, and the
    // stats listener again once the hoarder's request deadline passed.
    let mut hoard = Vec::new();
    for _ in 0..1000 {
        if let Ok(s) = TcpStream::connect_timeout(
            &SocketAddr::from(([127, 0, 0, 1], stats)),
            Duration::from_millis(20),
        ) {
            hoard.push(s);
        }
    }
    let t0 = Instant::now();
    let r = raw(
        fe1,
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(
        r.map(|r| r.0),
        Some(200),
        "balancer blocked by stats hoarders"
    );
    assert!(t0.elapsed() < Duration::from_secs(1));
    println!(
        "{} stats connections held: balancer answered in {:?}",
        hoard.len(),
        t0.elapsed()
    );
    drop(hoard);
    assert!(
        testkit::wait_until(Duration::from_secs(15), || get(stats, "/metrics", false)
            .is_some_and(|r| r.0 == 200)),
        "stats listener did not recover after the hoarder left"
    );
}
