//! Server addresses written as host names (`db1.example.test:PORT`): resolved with the system
//! resolver at start and by `check` (a name that does not resolve fails both the same way),
//! re-resolved on SIGHUP (a changed address takes effect; a failed lookup keeps the last
//! address and says why). The daemon runs in its own mount namespace where a temporary hosts
//! file is bound over /etc/hosts (and a resolv.conf naming a closed local port over
//! /etc/resolv.conf, so a missing name fails at once): the host's files are never touched.

mod common;

use common::*;
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use testkit::{require_root, require_tool, wait_until, TempDir};

/// Runs `args` in a new mount namespace with `hosts` over /etc/hosts and `resolv` over
/// /etc/resolv.conf (private mounts: nothing leaks to the host).
fn in_mount_ns(dir: &TempDir, args: &[&str]) -> Command {
    let script = "mount --bind \"$1\" /etc/hosts || exit 97; \
                  if [ -e /etc/resolv.conf ]; then mount --bind \"$2\" /etc/resolv.conf || exit 98; fi; \
                  shift 2; exec \"$@\"";
    let mut c = Command::new("unshare");
    c.args(["-m", "--propagation", "private", "sh", "-c", script, "sh"])
        .arg(dir.join("hosts"))
        .arg(dir.join("resolv.conf"))
        .args(args);
    c
}

/// A port free on both 127.0.0.2 and 127.0.0.3: one server on each.
fn twin_listeners() -> (TcpListener, TcpListener) {
    for _ in 0..50 {
        let a = TcpListener::bind("127.0.0.2:0").expect("bind 127.0.0.2");
        let port = a.local_addr().expect("addr").port();
        if let Ok(b) = TcpListener::bind(("127.0.0.3", port)) {
            return (a, b);
        }
    }
    panic!("no port free on both 127.0.0.2 and 127.0.0.3");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn config(dir: &TempDir, front: u16, server: &str) -> String {
    format!(
        "global:\n  node: names\n  control_socket: {}\n  log: {{ target: stderr, level: debug }}\n\
         frontends:\n  - name: www\n    bind: [\"127.0.0.1:{front}\"]\n    default_backend: db\n\
         backends:\n  - name: db\n    servers:\n      - {{ name: db1, address: \"{server}\" }}\n",
        dir.join("names.sock").display()
    )
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn server_host_names_resolve_at_start_and_again_on_sighup() {
    if !require_root("server_names") || !require_tool("server_names", "unshare") {
        return;
    }
    let dir = TempDir::new("server-names");
    let hosts = dir.join("hosts");
    std::fs::write(&hosts, "127.0.0.1 localhost\n127.0.0.2 db1.example.test\n").expect("hosts");
    std::fs::write(
        dir.join("resolv.conf"),
        "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
    )
    .expect("resolv.conf");
    let (la, lb) = twin_listeners();
    let port = la.local_addr().expect("addr").port();
    let (_a, _b) = (Backend::serve_on(la, "a"), Backend::serve_on(lb, "b"));
    let front = free_port();
    let cfg = dir.join("names.yaml");
    std::fs::write(
        &cfg,
        config(&dir, front, &format!("db1.example.test:{port}")),
    )
    .expect("cfg");
    let cfg_s = cfg.display().to_string();

    // check and run agree: the name resolves; a name that does not is an error for both.
    let out = run_with_timeout(
        in_mount_ns(&dir, &[BIN, "check", "-c", &cfg_s]),
        Duration::from_secs(20),
    );
    assert!(
        out.status.success(),
        "check: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        config(&dir, front, &format!("nope.example.test:{port}")),
    )
    .expect("bad");
    let bad_s = bad.display().to_string();
    for cmd in ["check", "run"] {
        let out = run_with_timeout(
            in_mount_ns(&dir, &[BIN, cmd, "-c", &bad_s]),
            Duration::from_secs(20),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {err}");
        assert!(
            err.contains("backends[0].servers[0].address: `nope.example.test` does not resolve"),
            "{cmd}: {err}"
        );
    }

    let log = dir.join("names.log");
    let mut cmd = in_mount_ns(&dir, &[BIN, "run", "-c", &cfg_s]);
    cmd.stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log).expect("log")));
    let daemon = Daemon(cmd.spawn().expect("start vrrplb"));
    let pid = daemon.0.id() as i32;
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let addr: SocketAddr = format!("127.0.0.1:{front}").parse().expect("front");
    let answered_by = |name: &'static str| {
        move || http_get(addr, "/", "").is_some_and(|(s, b)| s == 200 && b.starts_with(name))
    };
    assert!(
        wait_until(Duration::from_secs(10), answered_by("a")),
        "db1.example.test (127.0.0.2) never answered\n{}",
        log_text()
    );

    // The name moves to 127.0.0.3 (the file rewritten in place: the bind mount follows the
    // inode): after SIGHUP the new address serves.
    std::fs::write(&hosts, "127.0.0.1 localhost\n127.0.0.3 db1.example.test\n").expect("hosts");
    // SAFETY: kill(2) on the PID of the child we started.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    let reloaded = |n: usize| {
        wait_until(Duration::from_secs(10), || {
            log_text().matches("Configuration reloaded").count() >= n
        })
    };
    assert!(reloaded(1), "{}", log_text());
    assert!(
        wait_until(Duration::from_secs(3), answered_by("b")),
        "the new address did not take over\n{}",
        log_text()
    );
    assert_eq!(log_text().matches("balancer reloaded").count(), 1);

    // The name no longer resolves: the reload keeps the last address and says why.
    std::fs::write(&hosts, "127.0.0.1 localhost\n").expect("hosts");
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    assert!(reloaded(2), "{}", log_text());
    let text = log_text();
    assert!(
        text.contains("`db1.example.test` does not resolve now")
            && text.contains(&format!("keeps its last address 127.0.0.3:{port}")),
        "{text}"
    );
    assert!(!text.contains("reload refused"), "{text}");
    // Same address as before: the balancer is not even rebuilt, and b still answers.
    assert_eq!(text.matches("balancer reloaded").count(), 1, "{text}");
    for _ in 0..5 {
        assert!(answered_by("b")(), "{}", log_text());
    }
    // `status` reads only the control socket's path from the file: it answers although the
    // file's server name does not resolve now.
    let out = run_with_timeout(
        in_mount_ns(&dir, &[BIN, "status", "-c", &cfg_s]),
        Duration::from_secs(20),
    );
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("names"),
        "status: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
