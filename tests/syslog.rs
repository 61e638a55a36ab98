//! vrrplb's syslog output read back from a real rsyslog: ident, pid, facility and severity.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;
use testkit::{wait_until, Rsyslog, TempDir};

const BIN: &str = env!("CARGO_BIN_EXE_vrrplb");

#[test]
fn lines_reach_a_real_rsyslog_with_the_configured_facility_and_severity() {
    if !Rsyslog::available("lines_reach_a_real_rsyslog") {
        return;
    }
    let dir = TempDir::new("syslog");
    let rsyslog = Rsyslog::start(dir.path());
    let (sock, out) = (rsyslog.socket.clone(), rsyslog.output.clone());

    let cfg = dir.join("vrrplb.yaml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  node: syslogtest\n  log:\n    target: syslog\n    facility: local3\n    syslog_socket: {}\nvrrp_scripts:\n  chk:\n    script: /bin/true\n    user: no-such-user-vrrplb\n",
            sock.display()
        ),
    )
    .expect("write config");
    let mut vrrplb = Command::new(BIN)
        .args(["run", "-c"])
        .arg(&cfg)
        .stderr(Stdio::null())
        .spawn()
        .expect("run vrrplb");
    let pid = vrrplb.id();
    let started = wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .contains("Starting vrrplb")
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM vrrplb");
    let stopped = wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .contains("Stopped vrrplb")
    });
    let _ = vrrplb.wait();
    drop(rsyslog);
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(started && stopped, "rsyslog output:\n{text}");
    let line = text
        .lines()
        .find(|l| l.contains("Starting vrrplb"))
        .expect("start line");
    assert!(
        line.starts_with(&format!("local3.info vrrplb[{pid}]: Starting vrrplb v")),
        "facility/severity/ident/pid wrong: {line}"
    );
    println!("rsyslog got: {line}");
    // A config warning travels at warning severity.
    let warn = text
        .lines()
        .find(|l| l.contains("no-such-user-vrrplb"))
        .expect("warning line");
    assert!(
        warn.starts_with(&format!("local3.warning vrrplb[{pid}]: config warning: ")),
        "{warn}"
    );
}

/// Reads what a UDP and a TCP syslog receiver got, until `needle` arrived on both (bounded).
struct Receivers {
    udp: std::net::UdpSocket,
    tcp: std::net::TcpListener,
    udp_lines: Vec<String>,
    tcp_bytes: Vec<u8>,
    tcp_conn: Option<std::net::TcpStream>,
}

impl Receivers {
    fn new() -> Receivers {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
        udp.set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("tcp");
        tcp.set_nonblocking(true).expect("nonblocking");
        Receivers {
            udp,
            tcp,
            udp_lines: Vec::new(),
            tcp_bytes: Vec::new(),
            tcp_conn: None,
        }
    }

    fn poll(&mut self) {
        use std::io::Read;
        let mut buf = [0u8; 4096];
        while let Ok(n) = self.udp.recv(&mut buf) {
            self.udp_lines
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        if self.tcp_conn.is_none() {
            if let Ok((s, _)) = self.tcp.accept() {
                s.set_read_timeout(Some(Duration::from_millis(20)))
                    .expect("timeout");
                self.tcp_conn = Some(s);
            }
        }
        if let Some(s) = &mut self.tcp_conn {
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                self.tcp_bytes.extend_from_slice(&buf[..n]);
            }
        }
    }

    /// The TCP stream split by octet counting (RFC 6587: `LEN SP MSG`); panics on a bad frame.
    fn tcp_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = &self.tcp_bytes[..];
        while !rest.is_empty() {
            let sp = rest.iter().position(|b| *b == b' ').expect("frame length");
            let len: usize = std::str::from_utf8(&rest[..sp])
                .expect("ascii")
                .parse()
                .expect("frame length is a number");
            if rest.len() < sp + 1 + len {
                break; // the rest has not arrived yet
            }
            out.push(String::from_utf8_lossy(&rest[sp + 1..sp + 1 + len]).into_owned());
            rest = &rest[sp + 1 + len..];
        }
        out
    }

    fn wait_both(&mut self, needle: &str) -> bool {
        wait_until(Duration::from_secs(10), || {
            self.poll();
            self.udp_lines.iter().any(|l| l.contains(needle))
                && self.tcp_lines().iter().any(|l| l.contains(needle))
        })
    }
}

fn start_run(cfg: &std::path::Path) -> std::process::Child {
    Command::new(BIN)
        .args(["run", "-c"])
        .arg(cfg)
        .stderr(Stdio::null())
        .spawn()
        .expect("run vrrplb")
}

fn sigterm(child: &mut std::process::Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM vrrplb");
}

#[test]
fn lines_reach_udp_and_tcp_syslog_servers_in_rfc5424_and_rfc3164() {
    let dir = TempDir::new("ops-syslog-remote");
    for format in ["rfc5424", "rfc3164"] {
        let mut rx = Receivers::new();
        let udp = rx.udp.local_addr().expect("addr");
        let tcp = rx.tcp.local_addr().expect("addr");
        let cfg = dir.join(&format!("{format}.yaml"));
        std::fs::write(
            &cfg,
            format!(
                "global:\n  node: node-{format}\n  control_socket: {}\n  log:\n    target: syslog\n    facility: local3\n    syslog_format: {format}\n    syslog_server: [\"udp://{udp}\", \"tcp://{tcp}\"]\n",
                dir.join(&format!("{format}.sock")).display()
            ),
        )
        .expect("write config");
        let mut vrrplb = start_run(&cfg);
        let pid = vrrplb.id();
        let started = rx.wait_both("Starting vrrplb");
        sigterm(&mut vrrplb);
        // The last line is flushed from the queues before the process exits.
        let stopped = rx.wait_both("Stopped vrrplb");
        let _ = vrrplb.wait();
        let (udp_lines, tcp_lines) = (rx.udp_lines.clone(), rx.tcp_lines());
        assert!(
            started && stopped,
            "{format}: udp {udp_lines:#?}\ntcp {tcp_lines:#?}"
        );
        for (how, lines) in [("udp", &udp_lines), ("tcp", &tcp_lines)] {
            let line = lines
                .iter()
                .find(|l| l.contains("Starting vrrplb"))
                .expect("start line");
            println!("{format} over {how}: {line}");
            // local3.info = 19 * 8 + 6
            if format == "rfc5424" {
                let rest = line
                    .strip_prefix("<158>1 ")
                    .unwrap_or_else(|| panic!("{line}"));
                let (ts, rest) = rest.split_once(' ').expect("timestamp");
                assert!(
                    ts.len() == 27 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
                    "{line}"
                );
                assert!(
                    rest.starts_with(&format!("node-rfc5424 vrrplb {pid} - - Starting vrrplb v")),
                    "{line}"
                );
            } else {
                let rest = line
                    .strip_prefix("<158>")
                    .unwrap_or_else(|| panic!("{line}"));
                // `Mmm dd hh:mm:ss ` is 16 characters.
                assert!(
                    rest.get(16..).is_some_and(|r| r
                        .starts_with(&format!("node-rfc3164 vrrplb[{pid}]: Starting vrrplb v"))),
                    "{line}"
                );
            }
        }
    }
}

/// One keep-alive HTTP/1.1 exchange: true on a 200 with its whole body read.
fn keep_alive_get(s: &mut std::net::TcpStream, buf: &mut Vec<u8>) -> bool {
    use std::io::{Read, Write};
    if s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").is_err() {
        return false;
    }
    buf.clear();
    let mut chunk = [0u8; 8192];
    loop {
        let text = String::from_utf8_lossy(buf).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return text.starts_with("HTTP/1.1 200");
            }
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

#[test]
fn a_stuck_syslog_never_slows_the_balancer_and_drops_are_counted_in_status() {
    let dir = TempDir::new("ops-syslog-stuck");
    // A syslog socket nobody reads: once its queue is full every send would block.
    let stuck = dir.join("stuck.sock");
    let _stuck = std::os::unix::net::UnixDatagram::bind(&stuck).expect("bind stuck socket");
    let backend = common::Backend::start("127.0.0.1:0", "web1");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let cfg = dir.join("stuck.yaml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  control_socket: {}\n  log:\n    target: syslog\n    access_log: true\n    syslog_server: \"unix://{}\"\n\
frontends:\n  - name: www\n    bind: [\"127.0.0.1:{port}\"]\n    default_backend: web\n\
backends:\n  - name: web\n    servers: [{{ name: web1, address: \"{}\" }}]\n",
            dir.join("ctl.sock").display(),
            stuck.display(),
            backend.addr
        ),
    )
    .expect("write config");
    let mut vrrplb = start_run(&cfg);
    let mut conn = None;
    assert!(
        wait_until(Duration::from_secs(10), || {
            conn = std::net::TcpStream::connect(("127.0.0.1", port)).ok();
            conn.is_some()
        }),
        "vrrplb does not listen"
    );
    let mut s = conn.expect("connection");
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    // Each request is one access-log line: far more than the syslog queue holds.
    let (mut ok, mut slowest) = (0u32, Duration::ZERO);
    let mut buf = Vec::new();
    let t0 = std::time::Instant::now();
    for _ in 0..6000 {
        if t0.elapsed() > Duration::from_secs(60) {
            break;
        }
        let t = std::time::Instant::now();
        if !keep_alive_get(&mut s, &mut buf) {
            break;
        }
        slowest = slowest.max(t.elapsed());
        ok += 1;
    }
    let status = Command::new(BIN)
        .args(["status", "-c"])
        .arg(&cfg)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    sigterm(&mut vrrplb);
    let exited = wait_until(Duration::from_secs(15), || {
        matches!(vrrplb.try_wait(), Ok(Some(_)))
    });
    if !exited {
        let _ = vrrplb.kill();
    }
    let _ = vrrplb.wait();
    println!(
        "stuck syslog: {ok} requests in {:?}, slowest {slowest:?}; status:\n{status}",
        t0.elapsed()
    );
    assert_eq!(ok, 6000, "requests stopped being served");
    assert!(slowest < Duration::from_millis(500), "slowest {slowest:?}");
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("log unix://{} ", stuck.display())))
        .unwrap_or_else(|| panic!("no log line in status:\n{status}"));
    let dropped: u64 = line
        .split("dropped=")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(dropped > 1000, "{line}");
    assert!(exited, "vrrplb did not stop within 15 s of SIGTERM");
}

/// A UDP syslog receiver's lines, read as they come (bounded waits).
struct UdpSink {
    sock: std::net::UdpSocket,
    lines: Vec<String>,
}

impl UdpSink {
    fn new() -> UdpSink {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
        UdpSink {
            sock,
            lines: Vec::new(),
        }
    }

    fn url(&self) -> String {
        format!("udp://{}", self.sock.local_addr().expect("addr"))
    }

    fn poll(&mut self) {
        let mut buf = [0u8; 4096];
        while let Ok(n) = self.sock.recv(&mut buf) {
            self.lines
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }

    fn count(&self, needle: &str) -> usize {
        self.lines.iter().filter(|l| l.contains(needle)).count()
    }

    /// How many lines so far contain `needle`, after waiting for at least `want` (≤ 10 s).
    fn wait_count(&mut self, needle: &str, want: usize) -> usize {
        wait_until(Duration::from_secs(10), || {
            self.poll();
            self.lines.iter().filter(|l| l.contains(needle)).count() >= want
        });
        self.lines.iter().filter(|l| l.contains(needle)).count()
    }
}

/// `global.log` applies on SIGHUP without a restart: stderr -> two UDP servers (RFC 5424,
/// local5) -> one of them (RFC 3164, local3) -> stderr again. Each receiver gets lines from
/// the reload that adds it on, and none once a reload removed it. About 4 s.
#[test]
fn global_log_applies_live_on_sighup() {
    let dir = TempDir::new("syslog-live");
    let (mut one, mut two) = (UdpSink::new(), UdpSink::new());
    let cfg = dir.join("vrrplb.yaml");
    let write = |log: &str| {
        std::fs::write(
            &cfg,
            format!(
                "global:\n  node: livelog\n  control_socket: {}\n  log: {log}\n",
                dir.join("ctl.sock").display()
            ),
        )
        .expect("write config");
    };
    write("{ target: stderr }");
    let err = dir.join("stderr.log");
    let mut vrrplb = Killed(
        Command::new(BIN)
            .args(["run", "-c"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).expect("stderr file"))
            .spawn()
            .expect("run vrrplb"),
    );
    let stderr = || std::fs::read_to_string(&err).unwrap_or_default();
    let count = |needle: &str| stderr().matches(needle).count();
    let hup = |child: &std::process::Child| {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGHUP,
        )
        .expect("SIGHUP vrrplb");
    };
    assert!(
        wait_until(Duration::from_secs(10), || count("Starting vrrplb") == 1),
        "{}",
        stderr()
    );
    const DONE: &str = "Configuration reloaded";

    // 1. stderr -> both servers, RFC 5424, local5 (PRI 21*8+6 = 174).
    write(&format!(
        "{{ target: syslog, facility: local5, syslog_format: rfc5424, syslog_server: [\"{}\", \"{}\"] }}",
        one.url(),
        two.url()
    ));
    hup(&vrrplb.0);
    assert_eq!(one.wait_count(DONE, 1), 1, "{}", stderr());
    assert_eq!(two.wait_count(DONE, 1), 1, "{:?}", two.lines);
    let line = two
        .lines
        .iter()
        .find(|l| l.contains("global.log applied: syslog"))
        .unwrap_or_else(|| panic!("{:?}", two.lines));
    assert!(line.starts_with("<174>1 "), "{line}");
    assert!(line.contains(" livelog vrrplb "), "{line}");
    let err_now = stderr();
    assert!(
        err_now.contains("global.log changed: applying it") && !err_now.contains(DONE),
        "stderr still written after the switch:\n{err_now}"
    );

    // 2. Only `one`, RFC 3164, local3 (PRI 158): `two` hears nothing from this reload's end on.
    write(&format!(
        "{{ target: syslog, facility: local3, syslog_server: \"{}\" }}",
        one.url()
    ));
    hup(&vrrplb.0);
    assert_eq!(one.wait_count(DONE, 2), 2, "{:?}", one.lines);
    // The replaced destination's queue may still send its last lines (this reload's own
    // "applying it", RFC 5424) after the new one's first: two senders, no order between
    // them. The reload's end line goes through the new destination only.
    let done = one
        .lines
        .iter()
        .filter(|l| l.contains(DONE))
        .nth(1)
        .cloned()
        .unwrap_or_default();
    assert!(
        done.starts_with("<158>") && !done.starts_with("<158>1 "),
        "{done}\n{:?}",
        one.lines
    );
    std::thread::sleep(Duration::from_millis(300));
    two.poll();
    assert_eq!(two.count(DONE), 1, "{:?}", two.lines);
    assert!(
        !two.lines
            .iter()
            .any(|l| l.contains("global.log applied: syslog udp://127.0.0.1")
                && l.contains("Rfc3164"))
    );
    // A reload that changes nothing: `one` gets it, `two` not a line.
    let before = two.lines.len();
    hup(&vrrplb.0);
    assert_eq!(one.wait_count(DONE, 3), 3, "{:?}", one.lines);
    std::thread::sleep(Duration::from_millis(200));
    two.poll();
    assert_eq!(two.lines.len(), before, "{:?}", two.lines);

    // 3. Back to stderr: `one` hears nothing more.
    write("{ target: stderr }");
    hup(&vrrplb.0);
    assert!(
        wait_until(Duration::from_secs(10), || count(DONE) == 1),
        "{}",
        stderr()
    );
    assert!(
        stderr().contains("global.log applied: stderr, level info"),
        "{}",
        stderr()
    );
    hup(&vrrplb.0);
    assert!(wait_until(Duration::from_secs(10), || count(DONE) == 2));
    std::thread::sleep(Duration::from_millis(300));
    one.poll();
    assert_eq!(one.count(DONE), 3, "{:?}", one.lines);

    sigterm(&mut vrrplb.0);
    let _ = vrrplb.0.wait();
}

/// The daemon, killed (by its PID) if the test fails half-way.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
