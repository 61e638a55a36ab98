//! vrrplb's syslog output read back from a real rsyslog: ident, pid, facility and severity.

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
