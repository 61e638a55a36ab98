//! `vrrplb check` ≡ `vrrplb run`: every config-shaped refusal of `run` (validation, features
//! this version does not serve, what the balancer and the VRRP engine refuse when they are
//! built) is a `check` error with exit 1, and `run` refuses the same file with the same
//! errors; a file `check` accepts, `run` starts. Only loopback, no VRRP instance is started
//! (the refused files never get that far), so it needs no root.

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testkit::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_vrrplb");

struct Verdict {
    code: i32,
    stderr: String,
}

fn check(path: &Path) -> Verdict {
    let out = Command::new(BIN)
        .args(["check", "-c"])
        .arg(path)
        .output()
        .expect("run vrrplb check");
    Verdict {
        code: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `vrrplb run` for at most `patience`: Some(verdict) when it exited, None when it was still
/// running (then it is stopped with SIGTERM and must exit 0).
fn run(path: &Path, patience: Duration) -> Option<Verdict> {
    let mut child = Command::new(BIN)
        .args(["run", "--log", "stderr", "-c"])
        .arg(path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vrrplb run");
    let start = Instant::now();
    let mut status = None;
    while start.elapsed() < patience {
        if let Some(s) = child.try_wait().expect("try_wait") {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let exited = status.is_some();
    if status.is_none() {
        // SIGTERM by the PID we spawned.
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(s) = child.try_wait().expect("try_wait") {
                status = Some(s);
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if status.is_none() {
            let _ = child.kill();
        }
    }
    // Reaps the child (or returns the status try_wait already collected).
    let status = child.wait().ok();
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let code = status.and_then(|s| s.code()).unwrap_or(-1);
    if exited {
        Some(Verdict { code, stderr })
    } else {
        assert_eq!(code, 0, "run did not stop cleanly on SIGTERM:\n{stderr}");
        None
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A runnable balancer-only file on loopback with `global`, frontend and backend extras.
fn balancer(dir: &TempDir, global: &str, frontend: &str, backend: &str) -> String {
    let sock = dir.join("ctl.sock");
    format!(
        "global:\n  control_socket: {}\n  log: {{ target: stderr }}\n{global}\
frontends:\n  - name: www\n    bind: [\"127.0.0.1:{}\"]\n    default_backend: web\n{frontend}\
backends:\n  - name: web\n    servers: [{{ name: web1, address: \"127.0.0.1:9\" }}]\n{backend}",
        sock.display(),
        free_port()
    )
}

/// The lines `check` printed as errors (`error: FILE:LINE:COL: PATH: MESSAGE`).
fn error_lines(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("error: "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn check_refuses_exactly_what_run_refuses() {
    let dir = TempDir::new("ops-check-is-run");
    let bad_page = dir.join("503.http");
    std::fs::write(&bad_page, "this is not an HTTP response\n").expect("write page");
    let good_page = dir.join("good503.http");
    std::fs::write(
        &good_page,
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\r\nmaintenance\n",
    )
    .expect("write page");

    // (what, file, needle of an error `check` must print; None = both must accept).
    let cases: Vec<(&str, String, Option<&str>)> = vec![
        (
            "a runnable file",
            balancer(&dir, "", "", ""),
            None,
        ),
        (
            "a valid error page",
            balancer(
                &dir,
                "",
                &format!("    error_pages: {{ 503: {} }}\n", good_page.display()),
                "",
            ),
            None,
        ),
        // Refused by the balancer when it is built (Frontend::new): error page content.
        (
            "an error page that is not an HTTP response",
            balancer(
                &dir,
                "",
                &format!("    error_pages: {{ 503: {} }}\n", bad_page.display()),
                "",
            ),
            Some("frontends[0].error_pages.503: error page"),
        ),
        // Refused by the balancer when it is built: a header value it cannot send.
        (
            "a control character in a set_headers value",
            balancer(&dir, "", "    set_headers: { X-A: \"a\\x01b\" }\n", ""),
            Some("frontends[0].set_headers.X-A"),
        ),
        // Refused by the VRRP engine when an instance starts (ScriptError::EmptyCommand).
        (
            "a vrrp_script whose command line is blank",
            format!(
                "{}vrrp_scripts:\n  chk: {{ script: \"   \" }}\nvrrp_instances:\n  - name: VI_1\n    interface: lo\n    virtual_router_id: 51\n    virtual_ipaddress: [198.51.100.100/24]\n    track_scripts: [chk]\n",
                balancer(&dir, "", "", "")
            ),
            Some("vrrp_scripts.chk.script: must not be empty"),
        ),
        // Refused by the VRRP engine when an instance starts (InstanceError::UnknownBackend).
        (
            "track_backends naming no backend",
            format!(
                "{}vrrp_instances:\n  - name: VI_1\n    interface: lo\n    virtual_router_id: 51\n    virtual_ipaddress: [198.51.100.100/24]\n    track_backends: [{{ backend: nope, weight: -10 }}]\n",
                balancer(&dir, "", "", "")
            ),
            Some("no backend named `nope`"),
        ),
        // Validation: a typo and a value error in one item, both reported by both commands.
        (
            "a typo and an out-of-range value in one server",
            balancer(&dir, "", "", "").replace(
                "address: \"127.0.0.1:9\" }",
                "address: \"127.0.0.1:9\", wieght: 1, weight: 300 }",
            ),
            Some("backends[0].servers[0].weight: 300 is out of range"),
        ),
    ];
    // Features parsed but, while this file was written, not served: whatever a build does
    // with them, check and run must agree (a refusal names "not implemented").
    let features: Vec<(&str, String)> = vec![
        (
            "tcp mode with SNI routes and PROXY headers",
            balancer(&dir, "", "    mode: tcp\n    accept_proxy: true\n    routes: [{ match: { sni: \"*.a.test\" }, backend: web }]\n", "    mode: tcp\n    send_proxy: v2\n    timeouts: { tunnel: 1h }\n"),
        ),
        (
            "PROXY headers, a tunnel timeout and shutdown_sessions in http mode",
            balancer(&dir, "", "    accept_proxy: true\n", "    send_proxy: v1\n    on_marked_down: shutdown_sessions\n    timeouts: { tunnel: 1h }\n"),
        ),
        (
            "the stats page",
            balancer(
                &dir,
                &format!("  stats: {{ bind: \"127.0.0.1:{}\" }}\n", free_port()),
                "",
                "",
            ),
        ),
        (
            "TLS termination",
            balancer(
                &dir,
                "",
                &format!(
                    "    tls: {{ certificates: [\"{}\"] }}\n",
                    dir.join("missing.pem").display()
                ),
                "",
            ),
        ),
        (
            "redirect_https",
            balancer(&dir, "", "    redirect_https: true\n", ""),
        ),
        (
            "TLS to servers",
            balancer(&dir, "", "", "    tls: { verify: false }\n"),
        ),
        (
            "http_mode close",
            balancer(&dir, "", "", "    http_mode: close\n"),
        ),
        (
            "monitor_uri, del_headers, rules and backend set_headers",
            balancer(
                &dir,
                "",
                "    monitor_uri: /healthz\n    del_headers: [X-Forwarded-For]\n    rules:\n      - { match: { src: [\"203.0.113.0/24\"], method: [POST], path_prefix: /admin/ }, deny: 403 }\n      - { allow: true }\n",
                "    set_headers: { X-Backend: app1, X-Client: \"%[src]\" }\n",
            ),
        ),
    ];

    let mut refused = 0;
    let all = cases
        .iter()
        .map(|(w, t, n)| (*w, t.clone(), *n, true))
        .chain(features.iter().map(|(w, t)| (*w, t.clone(), None, false)));
    for (i, (what, text, needle, judged)) in all.enumerate() {
        let path = dir.join(&format!("case{i}.yaml"));
        std::fs::write(&path, &text).expect("write config");
        let c = check(&path);
        let r = run(&path, Duration::from_millis(1500));
        println!(
            "{what}: check exit {}, run {}",
            c.code,
            r.as_ref()
                .map_or("started".to_owned(), |v| format!("exit {}", v.code))
        );
        match (judged, needle) {
            (true, Some(n)) => {
                assert_eq!(
                    c.code, 1,
                    "{what}: check accepted it:\n{}\n{text}",
                    c.stderr
                );
                assert!(c.stderr.contains(n), "{what}: no `{n}` in:\n{}", c.stderr);
            }
            (true, None) => {
                assert_eq!(c.code, 0, "{what}: check refused it:\n{}\n{text}", c.stderr)
            }
            _ => {}
        }
        if c.code == 0 {
            assert!(
                r.is_none(),
                "{what}: check accepted it but run exited:\n{}\n{text}",
                r.map(|v| v.stderr).unwrap_or_default()
            );
        } else {
            refused += 1;
            let r = r.unwrap_or_else(|| panic!("{what}: check refused it but run started"));
            assert_eq!(r.code, 1, "{what}: run exit code\n{}", r.stderr);
            let errors = error_lines(&c.stderr);
            assert!(!errors.is_empty(), "{what}: check printed no error line");
            for e in errors {
                assert!(
                    r.stderr.contains(&e),
                    "{what}: run did not report `{e}`:\n{}",
                    r.stderr
                );
            }
        }
    }
    assert!(refused >= 5, "only {refused} refusals walked");
}
