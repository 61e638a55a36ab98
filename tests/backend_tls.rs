//! TLS to the servers through the real binary (lb.md §10 "To servers"): nginx serves HTTPS
//! on loopback with certificates made by openssl in the test, vrrplb listens for plain HTTP
//! and re-encrypts. Proves: requests with and without a body arrive over TLS with the SNI
//! and the client certificate; pooled TLS connections are reused; no `sni` means IP-address
//! verification and no SNI; a server whose certificate another CA signed is a connect
//! failure (redispatched, else 503) logged with the reason; health checks over TLS (L7OK,
//! L6OK, L6RSP); `vrrplb check` loads every file.

mod common;

use common::Backend;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;
use testkit::pki::{Ca, KeyKind};
use testkit::TempDir;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// One request on a keep-alive connection `s`: (status, body).
fn exchange(s: &mut TcpStream, request: &str) -> Option<(u16, String)> {
    s.write_all(request.as_bytes()).ok()?;
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).ok()? == 0 {
            return None;
        }
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

fn connect(port: u16) -> Option<TcpStream> {
    let s = TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(2),
    )
    .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    Some(s)
}

fn get(port: u16) -> Option<(u16, String)> {
    let mut s = connect(port)?;
    exchange(
        &mut s,
        "GET /x HTTP/1.1\r\nHost: www.example.test\r\nConnection: close\r\n\r\n",
    )
}

struct Proc {
    child: Child,
    log: std::path::PathBuf,
}

impl Proc {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    /// SIGTERM first: nginx's master then stops its workers (a SIGKILLed master leaves
    /// them running).
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) on the PID of our own child, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let exited = testkit::wait_until(Duration::from_secs(5), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        if !exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn spawn(cmd: &mut Command, log: std::path::PathBuf) -> Proc {
    let f = std::fs::File::create(&log).expect("log file");
    let child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(f)
        .spawn()
        .expect("spawn");
    Proc { child, log }
}

/// nginx: `good` (CA-signed, requires a client certificate, forwards to the plain echo
/// server with what it saw of TLS as request headers) and `impostor` (another CA).
fn nginx_conf(dir: &Path, good: u16, impostor: u16, echo: SocketAddr) -> String {
    let d = dir.display();
    format!(
        "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log info;\ndaemon off;\n\
events {{ worker_connections 64; }}\n\
http {{\n  access_log {d}/nginx-access.log;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
  fastcgi_temp_path {d}/fcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
  server {{\n    listen 127.0.0.1:{good} ssl;\n    ssl_certificate {d}/good.pem;\n    ssl_certificate_key {d}/good.key;\n\
    ssl_protocols TLSv1.2 TLSv1.3;\n    ssl_client_certificate {d}/client-ca.pem;\n    ssl_verify_client on;\n    keepalive_requests 1000;\n\
    location / {{\n      client_body_buffer_size 64k;\n      proxy_pass http://{echo};\n      proxy_pass_request_body off;\n\
      proxy_set_header Content-Length \"\";\n      proxy_set_header X-TLS-SNI \"[$ssl_server_name]\";\n\
      proxy_set_header X-TLS-Client \"$ssl_client_s_dn\";\n      proxy_set_header X-TLS-Protocol $ssl_protocol;\n\
      proxy_set_header X-Conn-Requests $connection_requests;\n      proxy_set_header X-Body \"$request_body\";\n    }}\n  }}\n\
  server {{\n    listen 127.0.0.1:{impostor} ssl;\n    ssl_certificate {d}/impostor.pem;\n    ssl_certificate_key {d}/impostor.key;\n\
    location / {{ return 200 \"impostor\\n\"; }}\n  }}\n}}\n"
    )
}

fn vrrplb_conf(dir: &Path, ports: [u16; 4], good: u16, impostor: u16) -> String {
    let d = dir.display();
    let tls = format!("ca_file: {d}/ca.pem, cert: {d}/client.pem, key: {d}/client.key");
    let [p_sni, p_ip, p_mixed, p_bad] = ports;
    let check = "interval: 500ms, timeout: 500ms";
    [
        "global:".to_string(),
        "  node: t".into(),
        "  log: { target: stderr, access_log: true }".into(),
        format!("  control_socket: {d}/ctl.sock"),
        "frontends:".into(),
        format!("  - {{ name: sni, bind: [\"127.0.0.1:{p_sni}\"], default_backend: tls-sni }}"),
        format!("  - {{ name: ip, bind: [\"127.0.0.1:{p_ip}\"], default_backend: tls-ip }}"),
        format!("  - {{ name: mixed, bind: [\"127.0.0.1:{p_mixed}\"], default_backend: mixed }}"),
        format!("  - {{ name: bad, bind: [\"127.0.0.1:{p_bad}\"], default_backend: bad }}"),
        "backends:".into(),
        "  - name: tls-sni".into(),
        format!("    servers: [{{ name: good, address: \"127.0.0.1:{good}\" }}]"),
        format!("    health_check: {{ kind: http, {check}, rise: 1, fall: 3, initial_state: down }}"),
        format!("    tls: {{ {tls}, sni: app.test }}"),
        "  - name: tls-ip".into(),
        format!("    servers: [{{ name: good, address: \"127.0.0.1:{good}\" }}]"),
        format!("    health_check: {{ kind: tcp, {check}, rise: 1, fall: 3, initial_state: down }}"),
        format!("    tls: {{ {tls} }}"),
        "  - name: mixed".into(),
        "    retries: 1".into(),
        "    redispatch: true".into(),
        format!("    servers: [{{ name: impostor, address: \"127.0.0.1:{impostor}\" }}, {{ name: good, address: \"127.0.0.1:{good}\" }}]"),
        format!("    tls: {{ {tls}, sni: app.test }}"),
        "  - name: bad".into(),
        "    retries: 1".into(),
        format!("    servers: [{{ name: impostor, address: \"127.0.0.1:{impostor}\" }}]"),
        format!("    tls: {{ {tls}, sni: app.test }}"),
        "  - name: bad-checked".into(),
        format!("    servers: [{{ name: impostor, address: \"127.0.0.1:{impostor}\" }}]"),
        format!("    health_check: {{ kind: tcp, {check}, rise: 1, fall: 1 }}"),
        format!("    tls: {{ {tls}, sni: app.test }}"),
        String::new(),
    ]
    .join("\n")
}

fn pki(dir: &Path) {
    let ca = Ca::new(dir, "ca");
    ca.leaf(
        dir,
        "good",
        &["DNS:app.test", "IP:127.0.0.1"],
        KeyKind::EcdsaP256,
        false,
    );
    let other = Ca::new(dir, "other-ca");
    other.leaf(
        dir,
        "impostor",
        &["DNS:app.test", "IP:127.0.0.1"],
        KeyKind::EcdsaP256,
        false,
    );
    let client_ca = Ca::new(dir, "client-ca");
    client_ca.leaf(dir, "client", &[], KeyKind::EcdsaP256, true);
}

#[test]
fn requests_are_reencrypted_to_verified_servers() {
    let test = "requests_are_reencrypted_to_verified_servers";
    if !testkit::require_tool(test, "openssl") || !testkit::require_tool(test, "nginx") {
        return;
    }
    let dir = TempDir::new("backend-tls");
    pki(dir.path());
    let echo = Backend::start("127.0.0.1:0", "echo");
    let (good, impostor) = (free_port(), free_port());
    let nconf = dir.join("nginx.conf");
    std::fs::write(&nconf, nginx_conf(dir.path(), good, impostor, echo.addr)).expect("conf");
    let nginx = spawn(
        Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&nconf),
        dir.join("nginx.stderr"),
    );
    let ports = [free_port(), free_port(), free_port(), free_port()];
    let cfg = dir.join("lb.yaml");
    std::fs::write(&cfg, vrrplb_conf(dir.path(), ports, good, impostor)).expect("config");
    let check = Command::new(common::BIN)
        .args(["check", "-c"])
        .arg(&cfg)
        .output()
        .expect("vrrplb check");
    assert!(
        check.status.success(),
        "check refused the file: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let lb = spawn(
        Command::new(common::BIN).args(["run", "-c"]).arg(&cfg),
        dir.join("lb.log"),
    );
    let [p_sni, p_ip, p_mixed, p_bad] = ports;
    // initial_state: down; the first passing check over TLS brings the server UP.
    assert!(
        testkit::wait_until(Duration::from_secs(10), || get(p_sni)
            .is_some_and(|(s, _)| s == 200)),
        "never served over TLS:\n{}\nnginx:\n{}",
        lb.log(),
        nginx.log()
    );

    // Keep-alive client, body-less and body requests on one connection.
    let mut c = connect(p_sni).expect("connect to vrrplb");
    let mut conn_requests = Vec::new();
    for i in 0..6 {
        let req = if i % 2 == 0 {
            "GET /get HTTP/1.1\r\nHost: www.example.test\r\n\r\n".to_string()
        } else {
            let body = format!("payload-{i}");
            format!(
                "POST /post HTTP/1.1\r\nHost: www.example.test\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
        };
        let (status, body) = exchange(&mut c, &req).expect("exchange");
        assert_eq!(status, 200, "{body}");
        assert!(body.starts_with("echo\n"), "{body}");
        let lower = body.to_ascii_lowercase();
        assert!(
            lower.contains("x-tls-sni: [app.test]"),
            "SNI not sent: {body}"
        );
        assert!(
            lower.contains("x-tls-client: cn=client"),
            "no client cert: {body}"
        );
        assert!(lower.contains("x-tls-protocol: tlsv1.3"), "{body}");
        if i % 2 == 1 {
            assert!(
                body.contains(&format!("X-Body: payload-{i}")),
                "body not forwarded: {body}"
            );
        }
        let n: u32 = body
            .lines()
            .find_map(|l| l.strip_prefix("X-Conn-Requests: "))
            .and_then(|v| v.trim().parse().ok())
            .expect("X-Conn-Requests");
        conn_requests.push(n);
    }
    println!("nginx connection_requests per request: {conn_requests:?}");
    // The pooled TLS connection serves again (whatever path the request took).
    assert!(
        conn_requests.iter().any(|&n| n > 1),
        "no TLS connection was reused: {conn_requests:?}"
    );

    // No sni: verified against the IP SAN, no SNI sent; the tcp check passed over TLS (UP).
    assert!(
        testkit::wait_until(Duration::from_secs(10), || get(p_ip)
            .is_some_and(|(s, _)| s == 200)),
        "tls-ip never served:\n{}",
        lb.log()
    );
    let (_, body) = get(p_ip).expect("ip");
    assert!(
        body.to_ascii_lowercase().contains("x-tls-sni: []"),
        "{body}"
    );

    // A server signed by another CA: connect failure, redispatched to the good one.
    for _ in 0..4 {
        let (status, body) = get(p_mixed).expect("mixed");
        assert_eq!(status, 200, "{body}");
        assert!(body.starts_with("echo\n"), "the impostor answered: {body}");
    }
    // Only the impostor: 503 after the retries.
    let (status, _) = get(p_bad).expect("bad");
    assert_eq!(status, 503);
    let log = lb.log();
    assert!(
        log.lines().any(|l| l.contains("connect failed")
            && l.contains("impostor")
            && l.contains("UnknownIssuer")),
        "no connect failure with its reason:\n{log}"
    );
    assert!(
        testkit::wait_until(Duration::from_secs(5), || lb
            .log()
            .lines()
            .any(|l| l.contains("bad-checked/impostor is DOWN")
                && l.contains("Layer6 invalid response"))),
        "no L6RSP check:\n{}",
        lb.log()
    );
    let log = lb.log();
    assert!(
        log.lines()
            .any(|l| l.contains("tls-ip/good is UP") && l.contains("Layer6 check passed")),
        "no L6OK check:\n{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("tls-sni/good is UP") && l.contains("Layer7 check passed")),
        "no L7OK check over TLS:\n{log}"
    );
}

fn check(dir: &TempDir, tls: &str) -> (i32, String) {
    let cfg = dir.join("check.yaml");
    std::fs::write(
        &cfg,
        format!(
            "frontends:\n  - {{ name: f, bind: [\"127.0.0.1:8080\"], default_backend: b }}\n\
backends:\n  - name: b\n    servers: [{{ name: s, address: \"127.0.0.1:8443\" }}]\n    tls: {tls}\n"
        ),
    )
    .expect("write");
    let out = Command::new(common::BIN)
        .args(["check", "-c"])
        .arg(&cfg)
        .output()
        .expect("vrrplb check");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn check_loads_every_backend_tls_file() {
    if !testkit::require_tool("check_loads_every_backend_tls_file", "openssl") {
        return;
    }
    let dir = TempDir::new("backend-tls-check");
    pki(dir.path());
    let d = dir.path().display();
    let ok = check(
        &dir,
        &format!(
            "{{ ca_file: {d}/ca.pem, sni: app.test, cert: {d}/client.pem, key: {d}/client.key }}"
        ),
    );
    assert_eq!(ok.0, 0, "{}", ok.1);
    // Key in the same file as the chain (HAProxy's crt habit).
    let both = dir.join("both.pem");
    let text = std::fs::read_to_string(dir.join("client.pem")).expect("pem")
        + &std::fs::read_to_string(dir.join("client.key")).expect("key");
    std::fs::write(&both, text).expect("write");
    let ok = check(
        &dir,
        &format!(
            "{{ ca_file: {d}/ca.pem, cert: {}, verify_host: app.test }}",
            both.display()
        ),
    );
    assert_eq!(ok.0, 0, "{}", ok.1);

    for (tls, needle) in [
        ("{ verify: true }".to_string(), "tls.ca_file"),
        (format!("{{ ca_file: {d}/missing.pem }}"), "missing.pem"),
        (format!("{{ ca_file: {d}/client.key }}"), "no certificate"),
        (
            format!("{{ ca_file: {d}/ca.pem, cert: {d}/client.pem, key: {d}/good.key }}"),
            "tls.cert",
        ),
        (
            format!("{{ ca_file: {d}/ca.pem, cert: {d}/client.pem }}"),
            "no private key",
        ),
        (
            format!("{{ ca_file: {d}/ca.pem, sni: \"bad name!\" }}"),
            "tls.sni",
        ),
    ] {
        let (code, out) = check(&dir, &tls);
        assert_eq!(code, 1, "accepted {tls}: {out}");
        assert!(out.contains(needle), "{tls}: no {needle:?} in {out}");
    }
    let (code, out) = check(&dir, "{ verify: false }");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("not verified"), "{out}");
}
