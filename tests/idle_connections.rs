//! Ten thousand idle connections (issue 11 "Bad input") against the real binary on loopback:
//! 5,000 to an http frontend that never send a byte, then 5,000 to a tcp frontend whose
//! tunnels go quiet after one greeting. The balancer's memory stays bounded (RSS growth per
//! idle connection is printed and capped), other clients are served meanwhile on both
//! frontends, and every idle connection is closed by its timeout (10 s; http: `http_request`,
//! the idle limit before a first request; tcp: `client`, the tunnel's idle limit).
//!
//! Needs a hard limit of open files of at least 16,000 (10,000 client sockets plus 5,000
//! server sockets here, 15,000 sockets in the balancer); the test raises its soft limit to
//! it, and the binary raises its own soft limit to the hard one at start (the soft limit is
//! usually 1024, which would stop the balancer at a few hundred connections).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use testkit::TempDir;

/// Idle connections per frontend.
const IDLE: usize = 5_000;
/// Descriptors the readiness probes may hold briefly (server sockets of the probe requests).
const PROBE_FDS: usize = 8;
/// What each idle connection may add to the balancer's resident memory, on average.
const MAX_KB_PER_CONNECTION: u64 = 48;

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Raises the soft limit of open files to the hard one; returns the limit now.
fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        lim.rlim_cur = lim.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
            return 0;
        }
    }
    lim.rlim_cur
}

/// An HTTP server answering `ok` to every request (a thread per connection: the balancer
/// opens few).
fn http_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        if s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                            .is_err()
                        {
                            return;
                        }
                    }
                    match s.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    addr
}

/// A TCP server that greets every connection with `hi\n` and keeps it open, quiet.
fn greeting_server() -> (SocketAddr, Arc<Mutex<Vec<TcpStream>>>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    let held = Arc::new(Mutex::new(Vec::new()));
    let h = held.clone();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let _ = s.write_all(b"hi\n");
            h.lock().unwrap_or_else(|e| e.into_inner()).push(s);
        }
    });
    (addr, held)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `n` connections, in batches so the listen backlog never overflows.
fn open_many(port: u16, n: usize) -> Vec<TcpStream> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        for _ in 0..250.min(n - out.len()) {
            let s = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).expect("connect");
            out.push(s);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    out
}

fn http_ok(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.starts_with("HTTP/1.1 200") && text.ends_with("ok")
}

fn tcp_greeted(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut b = [0u8; 3];
    s.read_exact(&mut b).is_ok() && &b == b"hi\n"
}

/// Whether the peer closed `s` (after any bytes it sent).
fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 64];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

/// The balancer, killed (by the PID we spawned) when the test ends, also on a failure.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn ten_thousand_idle_connections_stay_cheap_and_time_out() {
    let limit = raise_nofile();
    if limit < 16_000 {
        println!("skipped: the hard limit of open files is {limit}, 16000 needed");
        return;
    }
    let started = Instant::now();
    let web = http_server();
    let (pass, held) = greeting_server();
    let (http_port, tcp_port) = (free_port(), free_port());
    let dir = TempDir::new("httpx-idle");
    let cfg = dir.join("lb.yaml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  node: t\n  maxconn: 40000\n  log: {{ target: stderr }}\n  control_socket: {sock}\n{}{}{}{}{}{}{}{}",
            "frontends:\n",
            format_args!("  - name: www\n    bind: [\"127.0.0.1:{http_port}\"]\n    timeouts: {{ client: 10s, http_request: 10s }}\n    default_backend: web\n"),
            format_args!("  - name: pass\n    mode: tcp\n    bind: [\"127.0.0.1:{tcp_port}\"]\n"),
            "    timeouts: { client: 10s }\n    default_backend: held\n",
            "backends:\n",
            format_args!("  - name: web\n    servers: [{{ name: w, address: \"{web}\" }}]\n"),
            format_args!("  - name: held\n    mode: tcp\n    servers: [{{ name: h, address: \"{pass}\" }}]\n"),
            "    timeouts: { server: 60s }\n",
            sock = dir.join("ctl.sock").display(),
        ),
    )
    .expect("config");
    let log = std::fs::File::create(dir.join("lb.log")).expect("log");
    let child = Killed(
        std::process::Command::new(common::BIN)
            .args(["run", "-c"])
            .arg(&cfg)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn vrrplb"),
    );
    let pid = child.0.id();
    let up = testkit::wait_until(Duration::from_secs(10), || {
        http_ok(http_port) && tcp_greeted(tcp_port)
    });
    let lb_log = || std::fs::read_to_string(dir.join("lb.log")).unwrap_or_default();
    assert!(up, "balancer did not serve: {}", lb_log());
    // The probes above may leave a few descriptors that go soon after (the pooled server
    // connection of http_ok, the tunnel of tcp_greeted): a base taken with them would ask for
    // more than the idle connections can add.
    let base_fds = open_fds(pid).saturating_sub(PROBE_FDS);
    let base = rss_kb(pid);

    let mut http_idle = open_many(http_port, IDLE);
    assert!(
        testkit::wait_until(Duration::from_secs(10), || open_fds(pid) >= base_fds + IDLE),
        "the balancer holds {} descriptors",
        open_fds(pid)
    );
    let after_http = rss_kb(pid);
    assert!(http_ok(http_port), "http client not served beside 10k idle");
    assert!(
        tcp_greeted(tcp_port),
        "tcp client not served beside 10k idle"
    );

    let http_opened = started.elapsed();
    let mut tcp_idle = open_many(tcp_port, IDLE);
    // Each tunnel holds a client and a server socket (the http ones are still open: their
    // timeout is longer than it takes to open all).
    assert!(
        testkit::wait_until(Duration::from_secs(5), || open_fds(pid)
            >= base_fds + 3 * IDLE),
        "the balancer holds {} descriptors",
        open_fds(pid)
    );
    std::thread::sleep(Duration::from_millis(300));
    let after_tcp = rss_kb(pid);
    assert!(http_ok(http_port), "http client not served beside 20k idle");
    assert!(
        tcp_greeted(tcp_port),
        "tcp client not served beside 20k idle"
    );
    let per_http = after_http.saturating_sub(base) / IDLE as u64;
    let per_tcp = after_tcp.saturating_sub(after_http) / IDLE as u64;
    println!(
        "RSS {base} kB at rest, {after_http} kB with {IDLE} idle http connections ({per_http} kB each), \
{after_tcp} kB with {IDLE} idle tcp sessions more ({per_tcp} kB each, client + server socket); \
http ones opened after {http_opened:?}, all after {:?}",
        started.elapsed()
    );
    assert!(
        per_http <= MAX_KB_PER_CONNECTION,
        "{per_http} kB per idle http connection"
    );
    assert!(
        per_tcp <= MAX_KB_PER_CONNECTION,
        "{per_tcp} kB per idle tcp session"
    );

    // All closed by their timeouts (5 s after their last byte), none kept.
    for s in http_idle.iter().chain(tcp_idle.iter()) {
        s.set_nonblocking(true).expect("nonblocking");
    }
    let mut open: Vec<&mut TcpStream> = http_idle.iter_mut().chain(tcp_idle.iter_mut()).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !open.is_empty() && Instant::now() < deadline {
        open.retain_mut(|s| !closed(s));
        std::thread::sleep(Duration::from_millis(200));
    }
    let left = open.len();
    let total = started.elapsed();
    drop(child);
    held.lock().unwrap_or_else(|e| e.into_inner()).clear();
    assert_eq!(
        left, 0,
        "{left} idle connections still open after the timeouts"
    );
    assert!(total < Duration::from_secs(60), "took {total:?}");
    println!("all {} idle connections closed; {total:?} in all", 2 * IDLE);
}
