//! TLS termination through the real binary on loopback, with real clients: curl (HTTP/1.1 and
//! HTTP/2, verifying against the test CA), openssl s_client (SNI picks the certificate),
//! Python's ssl module, h2load, headless Chromium; redirect_https, hsts, h2c only when
//! configured, HTTP/2 rapid reset, bad handshakes (garbage, stall, TLS 1.0 only, a flood) and
//! certificate reload on SIGHUP (all or nothing: a refused reload serves no new certificate),
//! the cipher suite order, and `tickets: false` (resumption from the session cache only).

mod common;

use common::Backend;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use testkit::TempDir;

const NAME: &str = "www.example.test";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn tools(test: &str) -> bool {
    ["curl", "openssl", "python3", "h2load", "nghttp"]
        .iter()
        .all(|t| testkit::require_tool(test, t))
}

/// Runs a shell script in `dir`, bounded in time; panics when it fails.
fn script(dir: &Path, text: &str) -> Output {
    let mut cmd = Command::new("sh");
    cmd.args(["-ec", text]).current_dir(dir);
    let out = common::run_with_timeout(cmd, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "script failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A test CA and leaf certificates signed by it: `<name>.pem` holds chain + key.
fn make_ca(dir: &Path) {
    script(
        dir,
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 30 -subj /CN=vrrplb-test-CA 2>/dev/null",
    );
}

fn make_leaf(dir: &Path, file: &str, names: &str) {
    script(
        dir,
        &format!(
            "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout {file}.key -out {file}.csr -subj /CN={cn} 2>/dev/null
             printf 'subjectAltName={san}\\n' > {file}.ext
             openssl x509 -req -in {file}.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 60 -extfile {file}.ext -out {file}.crt 2>/dev/null
             cat {file}.key {file}.crt ca.pem > {file}.new && mv {file}.new {file}.pem",
            cn = names.split(',').next().unwrap_or(names),
            san = names
                .split(',')
                .map(|n| format!("DNS:{n}"))
                .collect::<Vec<_>>()
                .join(",")
        ),
    );
}

struct Daemon {
    child: std::process::Child,
    log: PathBuf,
}

impl Daemon {
    fn start(dir: &Path, config: &str) -> Daemon {
        let cfg = dir.join("lb.yaml");
        std::fs::write(&cfg, config).expect("write config");
        let log = dir.join("lb.log");
        let f = std::fs::File::create(&log).expect("log");
        let child = Command::new(common::BIN)
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
    fn wait_log(&self, needle: &str, limit: Duration) -> bool {
        testkit::wait_until(limit, || self.log().contains(needle))
    }
    fn hup(&self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).expect("SIGHUP");
    }
    fn rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Site {
    dir: TempDir,
    daemon: Daemon,
    tls: u16,
    plain: u16,
    h2c: u16,
    _backend: Backend,
}

/// The balancer: `tls` (certificates a.pem then b.pem, hsts, 2 s client timeout), `plain`
/// (redirect_https to the TLS port), `h2c` (h2c: true) and `h1` (no h2c); one backend.
fn site(test: &str) -> Site {
    let dir = TempDir::new(&format!("tls-{test}"));
    make_ca(dir.path());
    make_leaf(dir.path(), "a", &format!("{NAME},example.test"));
    make_leaf(dir.path(), "b", "other.example.test,*.api.example.test");
    let backend = Backend::start("127.0.0.1:0", "tls-backend");
    let (tls, plain, h2c) = (free_port(), free_port(), free_port());
    let config = format!(
        concat!(
        "global:\n  node: t\n  log: {{ target: stderr, access_log: true }}\n  control_socket: {sock}\n",
        "frontends:\n  - name: site\n    bind: [\"127.0.0.1:{tls}\"]\n    tls: {{ certificates: [\"{a}\", \"{b}\"] }}\n    hsts: 1y\n    forwarded_for: true\n    timeouts: {{ client: 2s }}\n    maxconn: 400\n    h2_max_streams: 24\n    default_backend: web\n",
        "  - name: plain\n    bind: [\"127.0.0.1:{plain}\"]\n    redirect_https: true\n    default_backend: web\n",
        "  - name: clear\n    bind: [\"127.0.0.1:{h2c}\"]\n    h2c: true\n    h2_max_streams: 10\n    timeouts: {{ client: 2s }}\n    default_backend: web\n",
        "backends:\n  - name: web\n    servers: [{{ name: s1, address: \"{be}\" }}]\n",
        ),
        sock = dir.join("ctl.sock").display(),
        a = dir.join("a.pem").display(),
        b = dir.join("b.pem").display(),
        be = backend.addr,
        tls = tls,
        plain = plain,
        h2c = h2c,
    );
    let daemon = Daemon::start(dir.path(), &config);
    wait_listening(&daemon, &[tls, plain, h2c]);
    Site {
        dir,
        daemon,
        tls,
        plain,
        h2c,
        _backend: backend,
    }
}

/// Waits until vrrplb listens on every one of `ports` (127.0.0.1).
fn wait_listening(daemon: &Daemon, ports: &[u16]) {
    let up = testkit::wait_until(Duration::from_secs(10), || {
        ports
            .iter()
            .all(|p| TcpStream::connect(("127.0.0.1", *p)).is_ok())
    });
    assert!(up, "vrrplb did not listen:\n{}", daemon.log());
}

fn run(args: &[&str], stdin: &str, limit: Duration) -> (bool, String) {
    let mut cmd = Command::new(args[0]);
    cmd.args(&args[1..]).stdin(Stdio::piped());
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(stdin.as_bytes());
    }
    let start = Instant::now();
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn curl(s: &Site, extra: &[&str], path: &str) -> String {
    let resolve = format!("{NAME}:{}:127.0.0.1", s.tls);
    let url = format!("https://{NAME}:{}{path}", s.tls);
    let ca = s.dir.join("ca.pem").display().to_string();
    let mut args = vec![
        "curl",
        "-sS",
        "-i",
        "--max-time",
        "10",
        "--cacert",
        &ca,
        "--resolve",
        &resolve,
    ];
    args.extend_from_slice(extra);
    args.push(&url);
    let (ok, out) = run(&args, "", Duration::from_secs(15));
    assert!(ok, "curl {extra:?} failed: {out}");
    out
}

/// The subject of the certificate `openssl s_client` is served for `sni`.
fn served_subject(s: &Site, sni: Option<&str>) -> String {
    let connect = format!("127.0.0.1:{}", s.tls);
    let mut args = vec!["openssl", "s_client", "-connect", &connect];
    if let Some(n) = sni {
        args.extend_from_slice(&["-servername", n]);
    } else {
        args.push("-noservername");
    }
    let (_, out) = run(&args, "", Duration::from_secs(10));
    out.lines()
        .find(|l| l.starts_with("subject="))
        .unwrap_or_else(|| panic!("no subject in s_client output:\n{out}"))
        .to_owned()
}

#[test]
fn clients_speak_https_and_http2_through_the_balancer() {
    if !tools("tls clients") {
        return;
    }
    let s = site("clients");

    // curl, HTTP/1.1 and HTTP/2, the chain verified against the test CA.
    let h1 = curl(&s, &["--http1.1"], "/hello");
    assert!(h1.starts_with("HTTP/1.1 200"), "{h1}");
    assert!(h1.contains("tls-backend"), "{h1}");
    assert!(
        h1.to_ascii_lowercase().contains("x-forwarded-proto: https"),
        "{h1}"
    );
    assert!(
        h1.to_ascii_lowercase()
            .contains("strict-transport-security: max-age=31536000"),
        "{h1}"
    );
    let h2 = curl(&s, &["--http2"], "/two");
    assert!(h2.starts_with("HTTP/2 200"), "{h2}");
    assert!(
        h2.contains("tls-backend") && h2.contains("GET /two HTTP/1.1"),
        "{h2}"
    );

    // SNI: exact name, wildcard, no SNI -> the first certificate.
    assert!(served_subject(&s, Some(NAME)).contains(NAME));
    assert!(served_subject(&s, Some("other.example.test")).contains("other.example.test"));
    assert!(served_subject(&s, Some("x.api.example.test")).contains("other.example.test"));
    assert!(served_subject(&s, Some("unknown.test")).contains(NAME));
    assert!(served_subject(&s, None).contains(NAME));

    // Python's ssl module, verifying the chain and the name.
    let py = r#"
import ssl, socket
ctx = ssl.create_default_context(cafile='CA')
with socket.create_connection(('127.0.0.1', PORT), timeout=5) as raw:
    with ctx.wrap_socket(raw, server_hostname='NAME') as t:
        t.sendall(b'GET /py HTTP/1.1\r\nHost: NAME\r\nConnection: close\r\n\r\n')
        data = b''
        while True:
            chunk = t.recv(65536)
            if not chunk:
                break
            data += chunk
        print(t.version(), data.split(b'\r\n')[0].decode())
"#
    .replace("CA", &s.dir.join("ca.pem").display().to_string())
    .replace("PORT", &s.tls.to_string())
    .replace("NAME", NAME);
    let (ok, out) = run(&["python3", "-c", &py], "", Duration::from_secs(15));
    assert!(ok && out.contains("TLSv1.3 HTTP/1.1 200"), "{out}");

    // h2load: many streams over a few connections.
    let url = format!("https://127.0.0.1:{}/load", s.tls);
    let (_, out) = run(
        &["h2load", "-n", "400", "-c", "4", "-m", "20", &url],
        "",
        Duration::from_secs(60),
    );
    assert!(
        out.contains("400 succeeded, 0 failed"),
        "h2load did not succeed:\n{out}"
    );
    assert!(out.contains("Application protocol: h2"), "{out}");
    // A client that chose h2 by ALPN gets hyper's HTTP/2 server itself (conn.rs), with the
    // frontend's stream bound in its SETTINGS.
    let url = format!("https://127.0.0.1:{}/settings", s.tls);
    let (ok, out) = run(&["nghttp", "-nv", &url], "", Duration::from_secs(15));
    assert!(ok, "nghttp failed:\n{out}");
    assert!(
        out.contains("SETTINGS_MAX_CONCURRENT_STREAMS(0x03):24"),
        "no stream bound of 24 in the SETTINGS:\n{out}"
    );
    assert!(out.contains(":status: 200"), "{out}");

    // The access log: `~` after the frontend, TLS version, cipher and SNI before the request.
    assert!(
        s.daemon.wait_log("site~ web/s1 ", Duration::from_secs(2)),
        "{}",
        s.daemon.log()
    );
    let log = s.daemon.log();
    let line = log
        .lines()
        .find(|l| l.contains("/two HTTP/2.0\""))
        .unwrap_or_else(|| panic!("no log line for /two:\n{log}"));
    assert!(
        line.contains("{TLSv1.3|TLS13_") && line.contains(&format!("|{NAME}}} \"GET")),
        "{line}"
    );

    // Headless Chromium loads a page over HTTP/2; it is told to accept the test CA's leaf
    // (the same chain curl verified above).
    if testkit::require_tool("tls chromium", "chromium") {
        let url = format!("https://{NAME}:{}/page", s.tls);
        let rules = format!("--host-resolver-rules=MAP {NAME} 127.0.0.1");
        let profile = s.dir.join("chromium");
        let profile_arg = format!("--user-data-dir={}", profile.display());
        let (_, out) = run(
            &[
                "chromium",
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--ignore-certificate-errors",
                &rules,
                &profile_arg,
                "--dump-dom",
                &url,
            ],
            "",
            Duration::from_secs(60),
        );
        assert!(out.contains("tls-backend"), "chromium:\n{out}");
        let log = s.daemon.log();
        assert!(
            log.lines()
                .any(|l| l.contains("/page HTTP/2.0\"") && l.contains("site~")),
            "no HTTP/2 line for chromium's request:\n{log}"
        );
    }
}

/// One raw HTTP/1.1 exchange on `stream`: the response head and body (Content-Length framed).
fn exchange(stream: &mut TcpStream, request: &str) -> String {
    stream.write_all(request.as_bytes()).expect("write");
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data);
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if data.len() >= end + 4 + len {
                break;
            }
        }
    }
    String::from_utf8_lossy(&data).into_owned()
}

#[test]
fn redirect_https_h2c_and_rapid_reset() {
    if !tools("tls redirect") {
        return;
    }
    let s = site("redirect");
    let mut c = TcpStream::connect(("127.0.0.1", s.plain)).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let r = exchange(
        &mut c,
        &format!("GET /a/b?x=1 HTTP/1.1\r\nHost: {NAME}:{}\r\n\r\n", s.plain),
    );
    assert!(r.starts_with("HTTP/1.1 302"), "{r}");
    let location = format!("location: https://{NAME}:{}/a/b?x=1\r\n", s.tls);
    assert!(r.to_ascii_lowercase().contains(&location), "{r}");
    assert!(r.to_ascii_lowercase().contains("content-length: 0"), "{r}");
    assert!(!r.to_ascii_lowercase().contains("strict-transport"), "{r}");
    // Keep-alive kept: a second request on the same connection; no Host -> https:// + path.
    let r = exchange(
        &mut c,
        "GET /nohost HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.0 302"), "{r}");
    assert!(
        r.to_ascii_lowercase()
            .contains("location: https:///nohost\r\n"),
        "{r}"
    );
    assert!(
        s.daemon
            .wait_log("plain plain/<NOSRV> ", Duration::from_secs(2)),
        "{}",
        s.daemon.log()
    );
    assert!(s
        .daemon
        .log()
        .lines()
        .any(|l| l.contains("plain/<NOSRV>") && l.contains(" 302 ") && l.contains(" LR-- ")));

    // h2c with prior knowledge: only where configured.
    let clear = format!("http://127.0.0.1:{}/h2c", s.h2c);
    let (ok, out) = run(
        &[
            "curl",
            "-sS",
            "-i",
            "--max-time",
            "5",
            "--http2-prior-knowledge",
            &clear,
        ],
        "",
        Duration::from_secs(10),
    );
    assert!(ok && out.starts_with("HTTP/2 200"), "{out}");
    let refused = format!("http://127.0.0.1:{}/h2c", s.plain);
    let (ok, out) = run(
        &[
            "curl",
            "-sS",
            "-i",
            "--max-time",
            "5",
            "--http2-prior-knowledge",
            &refused,
        ],
        "",
        Duration::from_secs(10),
    );
    assert!(
        !ok || !out.starts_with("HTTP/2"),
        "h2c accepted where not configured: {out}"
    );

    // Rapid reset (CVE-2023-44487): streams opened and reset at once get the connection
    // closed with GOAWAY long before the 2000 pairs are through.
    let mut c = TcpStream::connect(("127.0.0.1", s.h2c)).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend_from_slice(&frame(0x4, 0, 0, &[]));
    let block = [0x82, 0x86, 0x84, 0x41, 0x01, b'x']; // GET http / :authority x
    for i in 0..2000u32 {
        let id = 1 + 2 * i;
        out.extend_from_slice(&frame(0x1, 0x5, id, &block)); // HEADERS, END_STREAM|END_HEADERS
        out.extend_from_slice(&frame(0x3, 0, id, &8u32.to_be_bytes())); // RST_STREAM CANCEL
    }
    let _ = c.write_all(&out);
    let mut got = Vec::new();
    let start = Instant::now();
    let mut buf = [0u8; 65536];
    while start.elapsed() < Duration::from_secs(5) {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    // The server's SETTINGS announce h2_max_streams (10 on this frontend).
    let settings = frames(&got)
        .into_iter()
        .find(|(t, p)| *t == 0x4 && !p.is_empty())
        .map(|(_, p)| p)
        .unwrap_or_default();
    let max_streams = settings
        .chunks(6)
        .find(|e| e.len() == 6 && e[..2] == [0, 3])
        .map(|e| u32::from_be_bytes([e[2], e[3], e[4], e[5]]));
    assert_eq!(max_streams, Some(10), "SETTINGS {settings:?}");
    let goaway = frames(&got).into_iter().find(|(t, _)| *t == 0x7);
    let (_, payload) = goaway.unwrap_or_else(|| panic!("no GOAWAY in {} bytes", got.len()));
    let code = u32::from_be_bytes(payload[4..8].try_into().expect("code"));
    assert_eq!(code, 0xb, "GOAWAY code {code:#x} (want ENHANCE_YOUR_CALM)");
    // A PING flood from a client that never reads the answers: hyper answers one PING at a
    // time and reads no further until the answer is written, so memory stays flat; once the
    // socket buffers are full the write deadline (`timeouts.client`, 2 s) ends the connection.
    let mut c = TcpStream::connect(("127.0.0.1", s.h2c)).expect("connect");
    c.set_write_timeout(Some(Duration::from_secs(1))).ok();
    let mut burst = Vec::with_capacity(17 * 4096);
    for i in 0..4096u64 {
        burst.extend_from_slice(&frame(0x6, 0, 0, &i.to_be_bytes()));
    }
    let _ = c.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    let _ = c.write_all(&frame(0x4, 0, 0, &[]));
    let start = Instant::now();
    let mut sent = 0usize;
    let cut = loop {
        if start.elapsed() > Duration::from_secs(15) {
            break None;
        }
        match c.write(&burst) {
            Ok(n) => sent += n,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break Some(start.elapsed()),
        }
    };
    let cut = cut.unwrap_or_else(|| panic!("PING flood not cut after {sent} bytes"));
    println!(
        "PING flood: cut after {cut:?}, {} MB sent",
        sent / 1_000_000
    );
    assert!(
        s.daemon.rss_kb() < 200 * 1024,
        "RSS {} kB",
        s.daemon.rss_kb()
    );

    // The frontend still serves.
    let (ok, out) = run(
        &[
            "curl",
            "-sS",
            "-i",
            "--max-time",
            "5",
            "--http2-prior-knowledge",
            &clear,
        ],
        "",
        Duration::from_secs(10),
    );
    assert!(ok && out.starts_with("HTTP/2 200"), "{out}");
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// (type, payload) of each whole frame in `data`.
fn frames(data: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while data.len() >= at + 9 {
        let len = (usize::from(data[at]) << 16)
            | (usize::from(data[at + 1]) << 8)
            | usize::from(data[at + 2]);
        if data.len() < at + 9 + len {
            break;
        }
        out.push((data[at + 3], data[at + 9..at + 9 + len].to_vec()));
        at += 9 + len;
    }
    out
}

#[test]
fn bad_handshakes_are_closed_logged_and_bounded() {
    if !tools("tls bad input") {
        return;
    }
    let s = site("bad");
    let addr = SocketAddr::from(([127, 0, 0, 1], s.tls));

    // Garbage instead of a ClientHello: closed at once.
    let mut c = TcpStream::connect(addr).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(3))).ok();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    let mut buf = [0u8; 512];
    let t = Instant::now();
    while matches!(c.read(&mut buf), Ok(n) if n > 0) {}
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "garbage not closed at once"
    );
    assert!(
        s.daemon
            .wait_log("TLS handshake failed", Duration::from_secs(2)),
        "{}",
        s.daemon.log()
    );

    // A stalled handshake: closed after the deadline (timeouts.client 2 s < 5 s).
    let mut c = TcpStream::connect(addr).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(6))).ok();
    c.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .expect("write");
    let t = Instant::now();
    while matches!(c.read(&mut buf), Ok(n) if n > 0) {}
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(1800) && waited < Duration::from_millis(3500),
        "stalled handshake closed after {waited:?}"
    );
    assert!(s
        .daemon
        .wait_log("no handshake within 2s", Duration::from_secs(2)));

    // A client offering TLS 1.0 only is refused (the client's own floor lowered so it really
    // offers it).
    let connect = format!("127.0.0.1:{}", s.tls);
    let (ok, out) = run(
        &[
            "openssl",
            "s_client",
            "-connect",
            &connect,
            "-tls1",
            "-cipher",
            "DEFAULT@SECLEVEL=0",
        ],
        "",
        Duration::from_secs(10),
    );
    assert!(!ok || !out.contains("Protocol  : TLSv1\n"), "{out}");
    assert!(
        s.daemon
            .wait_log("peer is incompatible", Duration::from_secs(2)),
        "no version refusal logged:\n{}",
        s.daemon.log()
    );

    // A handshake flood: 300 connections that send half a ClientHello and stall. Memory stays
    // bounded, other clients are served meanwhile, and all are closed by the deadline.
    let before = s.daemon.rss_kb();
    let mut flood = Vec::new();
    for _ in 0..300 {
        if let Ok(mut c) = TcpStream::connect(addr) {
            let _ = c.write_all(&[
                0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
            ]);
            flood.push(c);
        }
    }
    let during = curl(&s, &["--http1.1"], "/during");
    assert!(during.starts_with("HTTP/1.1 200"), "{during}");
    let peak = s.daemon.rss_kb();
    assert!(
        peak < before + 40 * 1024,
        "RSS grew from {before} to {peak} kB with 300 stalled handshakes"
    );
    std::thread::sleep(Duration::from_millis(2600));
    let mut closed = 0;
    for c in flood.iter_mut() {
        c.set_read_timeout(Some(Duration::from_millis(50))).ok();
        // Closed: end of stream, or a reset of the unread handshake bytes.
        if matches!(c.read(&mut buf), Ok(0) | Err(_)) && c.read(&mut buf).is_ok_and(|n| n == 0) {
            closed += 1;
        }
    }
    assert_eq!(closed, flood.len(), "stalled handshakes left open");
    println!(
        "flood: {} connections, RSS {before} -> {peak} kB",
        flood.len()
    );
}

#[test]
fn sighup_reloads_certificates_and_keeps_the_last_good() {
    if !tools("tls reload") {
        return;
    }
    let s = site("reload");
    let fingerprint = served_fingerprint;
    let first = fingerprint(&s);
    assert!(first.contains("Fingerprint="), "{first}");

    // An open connection from before the reload.
    let py = r#"
import ssl, socket, sys
ctx = ssl.create_default_context(cafile='CA')
t = ctx.wrap_socket(socket.create_connection(('127.0.0.1', PORT), timeout=5), server_hostname='NAME')
def get(p):
    t.sendall(('GET ' + p + ' HTTP/1.1\r\nHost: NAME\r\n\r\n').encode())
    head = b''
    while b'\r\n\r\n' not in head:
        head += t.recv(1)
    n = int([l.split(b':')[1] for l in head.split(b'\r\n') if l.lower().startswith(b'content-length')][0])
    body = b''
    while len(body) < n:
        body += t.recv(n - len(body))
    return head.split(b'\r\n')[0].decode()
print('before', get('/before'), flush=True)
sys.stdin.readline()
print('after', get('/after'), flush=True)
"#
    .replace("CA", &s.dir.join("ca.pem").display().to_string())
    .replace("PORT", &s.tls.to_string())
    .replace("NAME", NAME);
    let mut held = Command::new("python3")
        .args(["-c", &py])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut held_out = std::io::BufReader::new(held.stdout.take().expect("stdout"));
    let mut line = String::new();
    let _ = std::io::BufRead::read_line(&mut held_out, &mut line);
    assert!(line.contains("before HTTP/1.1 200"), "{line}");

    // A new certificate for the same name: served to new connections after SIGHUP.
    make_leaf(s.dir.path(), "a", &format!("{NAME},example.test"));
    s.daemon.hup();
    let changed = testkit::wait_until(Duration::from_secs(5), || fingerprint(&s) != first);
    assert!(changed, "new certificate not served:\n{}", s.daemon.log());
    let second = fingerprint(&s);
    let _ = held.stdin.as_mut().expect("stdin").write_all(b"\n");
    let mut rest = String::new();
    let _ = held_out.read_to_string(&mut rest);
    let _ = held.wait();
    assert!(
        rest.contains("after HTTP/1.1 200"),
        "old connection cut: {rest}"
    );

    // A broken file (its key lost): the last good certificate stays, and the log says why.
    let a = s.dir.join("a.pem");
    let crt = std::fs::read_to_string(s.dir.join("a.crt")).expect("crt");
    std::fs::write(&a, crt).expect("write");
    s.daemon.hup();
    // `check` refuses the file on SIGHUP, so the whole reload is refused with the reason
    // (a file that breaks between check and load keeps its last good certificate instead:
    // proxy's unit tests).
    assert!(
        s.daemon
            .wait_log("a.pem: no private key", Duration::from_secs(5)),
        "{}",
        s.daemon.log()
    );
    assert_eq!(fingerprint(&s), second);
    let ok = curl(&s, &["--http1.1"], "/still");
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
}

/// The SHA-256 fingerprint of the certificate served for NAME on the TLS port.
fn served_fingerprint(s: &Site) -> String {
    let connect = format!("127.0.0.1:{}", s.tls);
    let (_, pem) = run(
        &[
            "openssl",
            "s_client",
            "-connect",
            &connect,
            "-servername",
            NAME,
        ],
        "",
        Duration::from_secs(10),
    );
    let (_, fp) = run(
        &["openssl", "x509", "-noout", "-fingerprint", "-sha256"],
        &pem,
        Duration::from_secs(10),
    );
    fp.trim().to_owned()
}

/// Certificates are part of the reload's all-or-nothing: a SIGHUP whose new balancer cannot
/// start (a new frontend's port is taken) serves no new certificate, even one whose file
/// loads; the same certificate is served once a reload is accepted. About 3 s.
#[test]
fn a_refused_reload_swaps_no_certificate() {
    if !tools("tls refused reload") {
        return;
    }
    let s = site("refused");
    let first = served_fingerprint(&s);
    assert!(first.contains("Fingerprint="), "{first}");

    // A new certificate on disk, and a new frontend on a port someone else holds.
    make_leaf(s.dir.path(), "a", &format!("{NAME},example.test"));
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let cfg = s.dir.join("lb.yaml");
    let text = std::fs::read_to_string(&cfg).expect("config");
    let extra = format!(
        "  - name: extra\n    bind: [\"127.0.0.1:{port}\"]\n    default_backend: web\nbackends:\n"
    );
    std::fs::write(&cfg, text.replacen("backends:\n", &extra, 1)).expect("write");
    s.daemon.hup();
    assert!(
        s.daemon.wait_log(
            "reload refused: cannot start the new balancer",
            Duration::from_secs(10)
        ),
        "{}",
        s.daemon.log()
    );
    assert_eq!(
        served_fingerprint(&s),
        first,
        "a refused reload swapped the certificate\n{}",
        s.daemon.log()
    );
    let ok = curl(&s, &["--http1.1"], "/kept");
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");

    // The port freed, the same file is accepted: now the new certificate is served.
    drop(taken);
    s.daemon.hup();
    assert!(
        s.daemon
            .wait_log("balancer reloaded: 4 frontend(s)", Duration::from_secs(10)),
        "{}",
        s.daemon.log()
    );
    let second = served_fingerprint(&s);
    assert!(
        second.contains("Fingerprint=") && second != first,
        "{second}"
    );
    assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
}

/// The cipher suite `openssl s_client` (with `args` added) negotiates on `port`, or None
/// when the handshake fails.
fn negotiated(port: u16, args: &[&str]) -> Option<String> {
    let connect = format!("127.0.0.1:{port}");
    let mut all = vec![
        "openssl",
        "s_client",
        "-connect",
        &connect,
        "-servername",
        NAME,
    ];
    all.extend_from_slice(args);
    let (_, out) = run(&all, "", Duration::from_secs(10));
    out.lines()
        .find_map(|l| l.split_once("Cipher is ").map(|(_, c)| c.trim().to_owned()))
        .filter(|c| c != "(NONE)")
}

/// `ciphersuites` and `ciphers` (HAProxy's names): the server's order wins over the
/// client's (the default puts AES-128-GCM first), a frontend offers only the suites it
/// names, and a client with none of them is refused with a logged reason. About 2 s.
#[test]
fn cipher_suites_follow_the_servers_order_and_list() {
    if !tools("tls cipher suites") {
        return;
    }
    let pair = TlsPair::start(
        "tls-suites",
        ", ciphersuites: TLS_CHACHA20_POLY1305_SHA256, ciphers: [ECDHE-ECDSA-CHACHA20-POLY1305]",
    );
    let (open, narrow, daemon) = (pair.plain, pair.tuned, &pair.daemon);

    // The client prefers AES-256 (OpenSSL's own default order does too): the server's wins.
    let client_first_256 = [
        "-ciphersuites",
        "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256",
    ];
    assert_eq!(
        negotiated(open, &client_first_256).as_deref(),
        Some("TLS_AES_128_GCM_SHA256")
    );
    assert_eq!(
        negotiated(open, &["-tls1_2"]).as_deref(),
        Some("ECDHE-ECDSA-AES128-GCM-SHA256")
    );
    // A frontend that names one suite per version offers only those.
    assert_eq!(
        negotiated(narrow, &[]).as_deref(),
        Some("TLS_CHACHA20_POLY1305_SHA256")
    );
    assert_eq!(
        negotiated(narrow, &["-tls1_2"]).as_deref(),
        Some("ECDHE-ECDSA-CHACHA20-POLY1305")
    );
    assert_eq!(negotiated(narrow, &client_first_256), None);
    assert_eq!(
        negotiated(
            narrow,
            &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"]
        ),
        None
    );
    assert!(
        daemon.wait_log("TLS handshake failed", Duration::from_secs(2)),
        "no refusal logged:\n{}",
        daemon.log()
    );
    // A request through the narrow frontend: its access log names the suite.
    let (ok, out) = run(
        &[
            "curl",
            "-sS",
            "--cacert",
            &pair.dir.join("ca.pem").display().to_string(),
            "--resolve",
            &format!("{NAME}:{narrow}:127.0.0.1"),
            &format!("https://{NAME}:{narrow}/suite"),
        ],
        "",
        Duration::from_secs(10),
    );
    assert!(ok, "{out}");
    assert!(
        daemon.wait_log("TLS13_CHACHA20_POLY1305_SHA256", Duration::from_secs(2)),
        "{}",
        daemon.log()
    );
}

/// A connection by `openssl s_client` (`args` added) that sends one request and reads to the
/// end, so the TLS 1.3 tickets that follow the handshake are read too; its output, and the
/// text of the session it saved to `sess` (`-sess_out`) or resumed from it (`resume`).
fn session(dir: &Path, port: u16, args: &[&str], sess: &str, resume: bool) -> (String, String) {
    let connect = format!("127.0.0.1:{port}");
    let file = dir.join(sess).display().to_string();
    let mut all = vec![
        "openssl",
        "s_client",
        "-connect",
        &connect,
        "-servername",
        NAME,
        "-ign_eof",
        if resume { "-sess_in" } else { "-sess_out" },
        &file,
    ];
    all.extend_from_slice(args);
    let request = format!("GET /t HTTP/1.1\r\nHost: {NAME}\r\nConnection: close\r\n\r\n");
    let (_, out) = run(&all, &request, Duration::from_secs(10));
    let (_, saved) = run(
        &["openssl", "sess_id", "-noout", "-text", "-in", &file],
        "",
        Duration::from_secs(10),
    );
    (out, saved)
}

/// The length in bytes of the ticket in `openssl sess_id -text` output (0: none).
fn ticket_len(saved: &str) -> usize {
    saved
        .lines()
        .skip_while(|l| !l.contains("TLS session ticket:"))
        .skip(1)
        .map_while(|l| l.trim_start().split_once(" - "))
        .filter(|(at, _)| at.len() == 4 && at.chars().all(|c| c.is_ascii_hexdigit()))
        .map(|(_, rest)| {
            rest.chars()
                .take(47)
                .collect::<String>()
                .split([' ', '-'])
                .filter(|b| b.len() == 2 && b.chars().all(|c| c.is_ascii_hexdigit()))
                .count()
        })
        .sum()
}

/// `tickets: false` (HAProxy's `no-tls-tickets`): no stateless ticket is issued. A TLS 1.2
/// client gets no ticket and resumes by session id; a TLS 1.3 client's ticket is only the
/// 32-byte key of an entry of the server's session cache, and resumes from it. With the
/// default (`tickets` on) both get sealed tickets that carry the session. About 2 s.
#[test]
fn tickets_false_issues_no_stateless_tickets_and_resumes_from_the_cache() {
    if !tools("tls tickets") {
        return;
    }
    let pair = TlsPair::start("tls-tickets", ", tickets: false");
    let (on, off, d) = (pair.plain, pair.tuned, pair.dir.path());

    // TLS 1.2: a ticket by default; none with tickets: false, and the session id resumes.
    let (out, saved) = session(d, on, &["-tls1_2"], "on12", false);
    assert!(out.contains("New, TLSv1.2"), "{out}");
    assert!(ticket_len(&saved) > 32, "{saved}");
    let (out, saved) = session(d, off, &["-tls1_2"], "off12", false);
    assert!(out.contains("New, TLSv1.2"), "{out}");
    assert_eq!(ticket_len(&saved), 0, "{saved}");
    assert!(
        saved
            .lines()
            .any(|l| l.trim_start().starts_with("Session-ID: ") && l.trim().len() > 12),
        "no session id: {saved}"
    );
    let (out, _) = session(d, off, &["-tls1_2"], "off12", true);
    assert!(out.contains("Reused, TLSv1.2"), "not resumed: {out}");

    // TLS 1.3: a sealed ticket by default; with tickets: false a 32-byte cache key, which
    // resumes.
    let (out, saved) = session(d, on, &["-tls1_3"], "on13", false);
    assert!(out.contains("New, TLSv1.3"), "{out}");
    assert!(ticket_len(&saved) > 32, "{saved}");
    let (_, saved) = session(d, off, &["-tls1_3"], "off13", false);
    assert_eq!(ticket_len(&saved), 32, "{saved}");
    let (out, _) = session(d, off, &["-tls1_3"], "off13", true);
    assert!(out.contains("Reused, TLSv1.3"), "not resumed: {out}");
    let (out, _) = session(d, on, &["-tls1_3"], "on13", true);
    assert!(out.contains("Reused, TLSv1.3"), "not resumed: {out}");
}

/// Two TLS frontends of one daemon on free loopback ports, with one certificate for `NAME`
/// and one backend: `plain` with the default `tls` keys, `tuned` with `extra` added to its
/// `tls` flow map (`", key: value, ..."`). The access log is on.
struct TlsPair {
    // Dropped in this order: the daemon stops before its directory goes.
    daemon: Daemon,
    _backend: Backend,
    dir: TempDir,
    plain: u16,
    tuned: u16,
}

impl TlsPair {
    fn start(tag: &str, extra: &str) -> TlsPair {
        let dir = TempDir::new(tag);
        make_ca(dir.path());
        make_leaf(dir.path(), "a", NAME);
        let backend = Backend::start("127.0.0.1:0", "tls-backend");
        let (plain, tuned) = (free_port(), free_port());
        let config = format!(
            concat!(
                "global:\n  node: t\n  log: {{ target: stderr, access_log: true }}\n  control_socket: {sock}\n",
                "frontends:\n  - name: plain\n    bind: [\"127.0.0.1:{plain}\"]\n    tls: {{ certificates: [\"{a}\"] }}\n    default_backend: web\n",
                "  - name: tuned\n    bind: [\"127.0.0.1:{tuned}\"]\n    tls: {{ certificates: [\"{a}\"]{extra} }}\n    default_backend: web\n",
                "backends:\n  - name: web\n    servers: [{{ name: s1, address: \"{be}\" }}]\n",
            ),
            sock = dir.join("ctl.sock").display(),
            a = dir.join("a.pem").display(),
            be = backend.addr,
            plain = plain,
            tuned = tuned,
            extra = extra,
        );
        let daemon = Daemon::start(dir.path(), &config);
        wait_listening(&daemon, &[plain, tuned]);
        TlsPair {
            daemon,
            _backend: backend,
            dir,
            plain,
            tuned,
        }
    }
}
