//! The binary's command line, end to end: `check` verdicts and `run`'s signal handling.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use testkit::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_vrrplb");

fn check(path: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(["check", "-c"])
        .arg(path)
        .output()
        .expect("run vrrplb check");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_accepts_both_example_boxes() {
    for f in ["deploy/examples/lb1.yaml", "deploy/examples/lb2.yaml"] {
        let (code, out, err) = check(std::path::Path::new(f));
        assert_eq!(code, 0, "{f}: {out}{err}");
        assert!(out.contains("Configuration file is valid"), "{out}");
        assert!(out.contains("VI_1: eth0 VRRPv2 VRID 51"), "{out}");
        assert!(out.contains("web: 2 server(s), roundrobin"), "{out}");
    }
}

#[test]
fn check_rejects_a_broken_file_with_line_and_key_path() {
    let dir = TempDir::new("cli-check");
    let path = dir.join("lb1.yaml");
    let text = std::fs::read_to_string("deploy/examples/lb1.yaml")
        .expect("example")
        .replace("priority: 101", "priority: 300")
        .replace("auth_pass: \"vrrplb51\"", "auth_pass: \"far-too-long\"");
    std::fs::write(&path, text).expect("write");
    let (code, out, err) = check(&path);
    assert_eq!(code, 1, "{out}{err}");
    let line_of = |needle: &str| {
        std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .position(|l| l.contains(needle))
            .unwrap()
            + 1
    };
    let expect_prio = format!("lb1.yaml:{}:", line_of("priority: 300"));
    assert!(
        err.contains(&expect_prio)
            && err.contains("vrrp_instances[0].priority: 300 is out of range 1..=255"),
        "{err}"
    );
    assert!(
        err.contains("vrrp_instances[0].authentication.auth_pass"),
        "{err}"
    );
    assert!(err.contains("2 error(s)"), "{err}");
}

#[test]
fn check_of_a_missing_file_is_a_clear_error() {
    let (code, _, err) = check(std::path::Path::new("/nonexistent/vrrplb.yaml"));
    assert_eq!(code, 1);
    assert!(
        err.contains("/nonexistent/vrrplb.yaml: cannot read the file"),
        "{err}"
    );
}

/// Reads stderr lines of a child on a thread, so the test can wait for a line with a deadline.
fn line_reader(stderr: std::process::ChildStderr) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_line(
    rx: &mpsc::Receiver<String>,
    needle: &str,
    timeout: Duration,
    seen: &mut Vec<String>,
) -> bool {
    let deadline = Instant::now() + timeout;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(l) => {
                let hit = l.contains(needle);
                seen.push(l);
                if hit {
                    return true;
                }
            }
            Err(_) => return false,
        }
    }
    false
}

#[test]
fn run_reloads_on_sighup_keeps_old_config_when_invalid_and_stops_on_sigterm() {
    let dir = TempDir::new("cli-run");
    let path = dir.join("lb.yaml");
    // A plain load balancer with no instances needs no privileges; gate-less frontends are
    // served by the balancer, so here the file only has global settings.
    let sock = dir.join("ctl.sock");
    let global = |node: &str| {
        format!(
            "global:\n  node: {node}\n  log: {{ target: stderr }}\n  control_socket: {}\n",
            sock.display()
        )
    };
    std::fs::write(&path, global("first")).expect("write");
    let mut child = Command::new(BIN)
        .args(["run", "-c"])
        .arg(&path)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn vrrplb run");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let rx = line_reader(child.stderr.take().expect("stderr"));
    let mut seen = Vec::new();
    let ok = wait_line(&rx, "Starting vrrplb", Duration::from_secs(10), &mut seen);
    assert!(ok, "no start line: {seen:?}");
    let status = |path: &std::path::Path| {
        Command::new(BIN)
            .args(["status", "-c"])
            .arg(path)
            .output()
            .expect("status")
    };
    assert!(testkit::wait_until(Duration::from_secs(5), || sock.exists()));
    let out = status(&path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "node first\n");

    std::fs::write(&path, "global:\n  node: [broken\n").expect("write");
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).expect("hup");
    assert!(
        wait_line(
            &rx,
            "keeping the running configuration",
            Duration::from_secs(5),
            &mut seen
        ),
        "{seen:?}"
    );
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "daemon died on a bad reload"
    );

    std::fs::write(
        &path,
        "global:\n  node: second\n  log: { target: stderr }\n",
    )
    .expect("write");
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).expect("hup");
    assert!(
        wait_line(
            &rx,
            "Configuration reloaded (node second)",
            Duration::from_secs(5),
            &mut seen
        ),
        "{seen:?}"
    );

    let t0 = Instant::now();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("term");
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("vrrplb did not exit within 5 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "exit status {status:?}");
    assert!(!sock.exists(), "control socket left behind");
    let out = Command::new(BIN)
        .args(["status", "-c"])
        .arg(&path)
        .output()
        .expect("status");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the vrrplb daemon"));
    println!("vrrplb stopped {:?} after SIGTERM", t0.elapsed());
}

#[test]
fn run_refuses_an_invalid_file_with_exit_1() {
    let dir = TempDir::new("cli-run-bad");
    let path = dir.join("lb.yaml");
    std::fs::write(&path, "vrrp_instances:\n  - name: VI_1\n").expect("write");
    let out = Command::new(BIN)
        .args(["run", "-c"])
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing required key `interface`"), "{err}");
}
