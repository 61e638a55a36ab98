//! The seeds' TLS setups as shipped in deploy/examples, run end to end with real clients:
//! seed001-tls.yaml (Apache TLS front + http->https redirect + per-app path routes with the
//! prefix stripped and cookie persistence) and seed002-reencrypt.yaml (HAProxy TLS termination
//! re-encrypted to HTTPS servers that verify the balancer's client certificate). nginx plays
//! the application servers, curl the clients (HTTP/1.1 and HTTP/2, verifying the test CA).
//!
//! The example files are used as they are, with three rewrites made by the test: the
//! certificate directory /etc/vrrplb/tls/ becomes the test's temp dir (`vrrplb check` then
//! passes on the whole file, VRRP instance and gates included); for `run`, the VIP and the
//! servers' addresses become loopback ports, and the VRRP instance and the frontends' `gate`
//! lines are removed (loopback, no namespace: the gate would keep the frontends closed without
//! a MASTER, and the failover of a gated pair is covered by tests/pair_gate.rs).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use testkit::pki::{Ca, KeyKind};
use testkit::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_vrrplb");
const HOST: &str = "www.example.test";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn example(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/examples")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The example with its certificate paths under `dir` (what `check` gets).
fn with_certs_in(text: &str, dir: &Path) -> String {
    text.replace("/etc/vrrplb/tls/", &format!("{}/", dir.display()))
}

/// What `run` gets on loopback: `addresses` rewritten (VIP and servers), stderr logging, a
/// control socket in `dir`, no `vrrp_instances` block and no `gate` lines.
fn on_loopback(text: &str, dir: &Path, addresses: &[(&str, String)]) -> String {
    let mut out = Vec::new();
    let mut in_vrrp = false;
    for line in text.lines() {
        if !line.starts_with(' ') && !line.starts_with('#') && !line.is_empty() {
            in_vrrp = line.starts_with("vrrp_instances:");
        }
        if in_vrrp || line.trim_start().starts_with("gate:") {
            continue;
        }
        let mut l = line.replace("target: syslog", "target: stderr");
        for (from, to) in addresses {
            l = l.replace(&format!("\"{from}\""), &format!("\"{to}\""));
        }
        out.push(l);
        if line == "global:" {
            out.push(format!("  control_socket: {}/ctl.sock", dir.display()));
        }
    }
    out.join("\n") + "\n"
}

fn check(dir: &Path, name: &str, text: &str) {
    let cfg = dir.join(name);
    std::fs::write(&cfg, text).expect("write config");
    let out = Command::new(BIN)
        .args(["check", "-c"])
        .arg(&cfg)
        .output()
        .expect("vrrplb check");
    assert!(
        out.status.success(),
        "vrrplb check refused {name}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(cmd: &mut Command, log: PathBuf) -> Proc {
        let f = std::fs::File::create(&log).expect("log file");
        let child = cmd.stdout(Stdio::null()).stderr(f).spawn().expect("spawn");
        Proc { child, log }
    }
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    /// SIGTERM first: nginx's master then stops its workers.
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

fn nginx(dir: &Path, servers: &str) -> Proc {
    let d = dir.display();
    let conf = format!(
        "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log info;\ndaemon off;\n\
events {{ worker_connections 64; }}\n\
http {{\n  access_log {d}/nginx-access.log;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
  fastcgi_temp_path {d}/fcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
  default_type text/plain;\n  absolute_redirect off;\n{servers}}}\n"
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).expect("nginx.conf");
    Proc::spawn(
        Command::new("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&path),
        dir.join("nginx.stderr"),
    )
}

fn vrrplb(dir: &Path, text: &str) -> Proc {
    let cfg = dir.join("run.yaml");
    std::fs::write(&cfg, text).expect("write config");
    Proc::spawn(
        Command::new(BIN).args(["run", "-c"]).arg(&cfg),
        dir.join("lb.log"),
    )
}

/// curl with `args`, bounded in time: (ran to success, stdout + stderr).
fn curl(args: &[&str]) -> (bool, String) {
    let mut child = Command::new("curl")
        .args(["-sS", "-i", "--max-time", "10"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn curl");
    let start = Instant::now();
    while !matches!(child.try_wait(), Ok(Some(_))) && start.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("curl output");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// A client of the site: `https://www.example.test:<tls>` and `http://…:<plain>` resolved to
/// loopback, the test CA trusted.
struct Client {
    ca: String,
    tls: u16,
    plain: u16,
}

impl Client {
    fn https(&self, path: &str, extra: &[&str]) -> String {
        let resolve = format!("{HOST}:{}:127.0.0.1", self.tls);
        let url = format!("https://{HOST}:{}{path}", self.tls);
        let mut args = vec!["--cacert", &self.ca, "--resolve", &resolve];
        args.extend_from_slice(extra);
        args.push(&url);
        let (ok, out) = curl(&args);
        assert!(ok, "curl {url} {extra:?} failed: {out}");
        out
    }
    fn http(&self, path: &str) -> String {
        let resolve = format!("{HOST}:{}:127.0.0.1", self.plain);
        let url = format!("http://{HOST}:{}{path}", self.plain);
        let (ok, out) = curl(&["--resolve", &resolve, &url]);
        assert!(ok, "curl {url} failed: {out}");
        out
    }
}

fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    response.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn status(response: &str) -> &str {
    response.split_whitespace().nth(1).unwrap_or("")
}

fn body(response: &str) -> &str {
    response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.trim())
        .unwrap_or("")
}

/// `cat cert key > out`: the HAProxy-style PEM the examples name.
fn bundle(cert: &Path, key: &Path, out: &Path) {
    let text =
        std::fs::read_to_string(cert).expect("cert") + &std::fs::read_to_string(key).expect("key");
    std::fs::write(out, text).expect("bundle");
}

fn tools(test: &str) -> bool {
    ["openssl", "nginx", "curl"]
        .iter()
        .all(|t| testkit::require_tool(test, t))
}

#[test]
fn seed001_tls_front_redirect_and_app_paths() {
    let test = "seed001_tls_front_redirect_and_app_paths";
    if !tools(test) {
        return;
    }
    let dir = TempDir::new("seeds-001");
    let d = dir.path();
    let ca = Ca::new(d, "ca");
    let site = ca.leaf(
        d,
        "site",
        &[&format!("DNS:{HOST}")],
        KeyKind::EcdsaP256,
        false,
    );
    bundle(&site.cert, &site.key, &d.join("example.com.pem"));
    let text = with_certs_in(&example("seed001-tls.yaml"), d);
    check(d, "seed001-tls.yaml", &text);

    // Four app servers: each names itself and the path it was asked for, sets a cookie with
    // Path=/ and redirects /login to /welcome (a relative Location).
    let names = ["app1_1", "app1_2", "app2_1", "app2_2"];
    let ports: Vec<u16> = names.iter().map(|_| free_port()).collect();
    let servers: String = names
        .iter()
        .zip(&ports)
        .map(|(n, p)| {
            format!(
                "  server {{\n    listen 127.0.0.1:{p};\n    add_header Set-Cookie \"sess={n}; Path=/\";\n\
    location /login {{ return 302 /welcome; }}\n    location / {{ return 200 \"{n} $request_uri\\n\"; }}\n  }}\n"
            )
        })
        .collect();
    let _nginx = nginx(d, &servers);
    let (tls, plain) = (free_port(), free_port());
    let mut addresses = vec![
        ("198.51.100.100:443", format!("127.0.0.1:{tls}")),
        ("198.51.100.100:80", format!("127.0.0.1:{plain}")),
    ];
    for (from, p) in [
        "198.51.100.46:80",
        "198.51.100.47:80",
        "198.51.100.56:80",
        "198.51.100.57:80",
    ]
    .into_iter()
    .zip(&ports)
    {
        addresses.push((from, format!("127.0.0.1:{p}")));
    }
    let lb = vrrplb(d, &on_loopback(&text, d, &addresses));
    let c = Client {
        ca: d.join("ca.pem").display().to_string(),
        tls,
        plain,
    };
    let ready = testkit::wait_until(Duration::from_secs(15), || {
        let resolve = format!("{HOST}:{tls}:127.0.0.1");
        let url = format!("https://{HOST}:{tls}/app2/ready");
        let (ok, out) = curl(&["--cacert", &c.ca, "--resolve", &resolve, &url]);
        ok && status(&out) == "200"
    });
    assert!(ready, "the TLS front never served:\n{}", lb.log());

    // http -> 302 https, same host, the TLS port (not 443 here), path and query kept.
    let r = c.http("/app1/page?q=1");
    assert_eq!(status(&r), "302", "{r}");
    assert_eq!(
        header(&r, "location"),
        Some(format!("https://{HOST}:{tls}/app1/page?q=1").as_str()),
        "{r}"
    );

    // https, HTTP/1.1: prefix stripped at the server, HSTS, persistence cookie inserted.
    let r = c.https("/app1/hello?x=2", &["--http1.1"]);
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let b = body(&r);
    assert!(
        b == "app1_1 /hello?x=2" || b == "app1_2 /hello?x=2",
        "app1 did not get the stripped path: {r}"
    );
    assert_eq!(
        header(&r, "strict-transport-security"),
        Some("max-age=31536000"),
        "{r}"
    );
    let chosen = b.split(' ').next().unwrap_or("");
    assert!(
        r.lines()
            .any(|l| l.to_ascii_lowercase().starts_with("set-cookie: srvid=")
                && l.contains(&format!("SRVID={chosen}"))),
        "no persistence cookie for {chosen}: {r}"
    );
    // The server's own cookie Path=/ comes back under the app's prefix.
    assert!(
        r.lines()
            .any(|l| l.contains(&format!("sess={chosen}; Path=/app1/"))),
        "Set-Cookie path not rewritten: {r}"
    );
    let r = c.https("/app2/other", &["--http1.1"]);
    let b = body(&r);
    assert!(b == "app2_1 /other" || b == "app2_2 /other", "{r}");

    // Location from a server is rewritten back under the prefix; /app1 -> /app1/.
    let r = c.https("/app1/login", &["--http1.1"]);
    assert_eq!(status(&r), "302", "{r}");
    assert_eq!(header(&r, "location"), Some("/app1/welcome"), "{r}");
    let r = c.https("/app2", &["--http1.1"]);
    assert_eq!(status(&r), "301", "{r}");
    assert_eq!(header(&r, "location"), Some("/app2/"), "{r}");

    // Without the cookie roundrobin reaches both app1 servers; with it, always the same one.
    let mut seen = Vec::new();
    for i in 0..4 {
        let r = c.https(&format!("/app1/rr{i}"), &["--http1.1"]);
        seen.push(body(&r).split(' ').next().unwrap_or("").to_owned());
    }
    assert!(
        seen.iter().any(|s| s == "app1_1") && seen.iter().any(|s| s == "app1_2"),
        "roundrobin did not reach both servers: {seen:?}"
    );
    for i in 0..4 {
        let r = c.https(
            &format!("/app1/stick{i}"),
            &["--http1.1", "-H", "Cookie: SRVID=app1_2"],
        );
        assert_eq!(body(&r), format!("app1_2 /stick{i}"), "{r}");
        assert!(
            !r.to_ascii_lowercase().contains("set-cookie: srvid="),
            "a persisted client got a new cookie: {r}"
        );
    }

    // HTTP/2 to the client (ALPN h2), the server still gets its stripped path.
    let r = c.https("/app2/h2", &["--http2"]);
    assert!(r.starts_with("HTTP/2 200"), "{r}");
    let b = body(&r);
    assert!(b == "app2_1 /h2" || b == "app2_2 /h2", "{r}");
    assert!(
        header(&r, "strict-transport-security").is_some(),
        "no HSTS over HTTP/2: {r}"
    );
    println!("seed001 roundrobin: {seen:?}");
}

#[test]
fn seed002_termination_and_reencryption() {
    let test = "seed002_termination_and_reencryption";
    if !tools(test) {
        return;
    }
    let dir = TempDir::new("seeds-002");
    let d = dir.path();
    // Clients trust `ca`; the servers have their own CA and accept only the balancer's
    // client certificate, signed by a third one.
    let ca = Ca::new(d, "ca");
    let front = ca.leaf(
        d,
        "front",
        &[&format!("DNS:{HOST}")],
        KeyKind::EcdsaP256,
        false,
    );
    bundle(&front.cert, &front.key, &d.join("my-crt-key.pem"));
    let servers_ca = Ca::new(d, "servers-ca");
    servers_ca.leaf(
        d,
        "srv",
        &["DNS:app.example.test"],
        KeyKind::EcdsaP256,
        false,
    );
    let client_ca = Ca::new(d, "client-ca");
    let client = client_ca.leaf(d, "lb1-client", &[], KeyKind::EcdsaP256, true);
    bundle(&client.cert, &client.key, &d.join("lb-client.pem"));
    let text = with_certs_in(&example("seed002-reencrypt.yaml"), d);
    check(d, "seed002-reencrypt.yaml", &text);

    let dd = d.display();
    let ports = [free_port(), free_port()];
    let servers: String = ["srv1", "srv2"]
        .iter()
        .zip(ports)
        .map(|(n, p)| {
            format!(
                "  server {{\n    listen 127.0.0.1:{p} ssl;\n    ssl_certificate {dd}/srv.pem;\n    ssl_certificate_key {dd}/srv.key;\n    ssl_protocols TLSv1.2 TLSv1.3;\n\
    ssl_client_certificate {dd}/client-ca.pem;\n    ssl_verify_client on;\n\
    location / {{ return 200 \"{n} $scheme $ssl_protocol [$ssl_server_name] $ssl_client_s_dn $request_uri\\n\"; }}\n  }}\n"
            )
        })
        .collect();
    let nginx = nginx(d, &servers);
    let (tls, plain) = (free_port(), free_port());
    let addresses = [
        ("198.51.100.100:8443", format!("127.0.0.1:{tls}")),
        ("198.51.100.100:8080", format!("127.0.0.1:{plain}")),
        ("198.51.100.21:443", format!("127.0.0.1:{}", ports[0])),
        ("198.51.100.22:443", format!("127.0.0.1:{}", ports[1])),
    ];
    let lb = vrrplb(d, &on_loopback(&text, d, &addresses));
    let c = Client {
        ca: d.join("ca.pem").display().to_string(),
        tls,
        plain,
    };
    let ready = testkit::wait_until(Duration::from_secs(15), || {
        let resolve = format!("{HOST}:{tls}:127.0.0.1");
        let url = format!("https://{HOST}:{tls}/ready");
        let (ok, out) = curl(&["--cacert", &c.ca, "--resolve", &resolve, &url]);
        ok && status(&out) == "200"
    });
    assert!(
        ready,
        "never served over TLS:\n{}\nnginx:\n{}",
        lb.log(),
        nginx.log()
    );

    // The seed's `http-request redirect scheme https`: 302 to the TLS port.
    let r = c.http("/cart?id=7");
    assert_eq!(status(&r), "302", "{r}");
    assert_eq!(
        header(&r, "location"),
        Some(format!("https://{HOST}:{tls}/cart?id=7").as_str()),
        "{r}"
    );

    // Terminated at vrrplb, re-encrypted: the server saw https, TLS 1.3, the configured SNI
    // and the balancer's client certificate; both servers take turns.
    let mut seen = Vec::new();
    for i in 0..4 {
        let r = c.https(&format!("/r{i}"), &["--http1.1"]);
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        let b = body(&r);
        let rest = format!(" https TLSv1.3 [app.example.test] CN=lb1-client /r{i}");
        assert!(
            b == format!("srv1{rest}") || b == format!("srv2{rest}"),
            "not re-encrypted as configured: {r}"
        );
        seen.push(b.split(' ').next().unwrap_or("").to_owned());
    }
    assert!(
        seen.iter().any(|s| s == "srv1") && seen.iter().any(|s| s == "srv2"),
        "both HTTPS servers should serve: {seen:?}"
    );

    // HTTP/2 from the client, HTTP/1.1 over TLS to the server.
    let r = c.https("/h2", &["--http2"]);
    assert!(r.starts_with("HTTP/2 200"), "{r}");
    assert!(
        body(&r).ends_with(" https TLSv1.3 [app.example.test] CN=lb1-client /h2"),
        "{r}"
    );
    println!("seed002 servers: {seen:?}");
}
