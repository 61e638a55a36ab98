//! vrrplb's syslog output read back from a real rsyslog: ident, pid, facility and severity.

use std::process::{Command, Stdio};
use std::time::Duration;
use testkit::{require_tool, wait_until, TempDir};

const BIN: &str = env!("CARGO_BIN_EXE_vrrplb");

#[test]
fn lines_reach_a_real_rsyslog_with_the_configured_facility_and_severity() {
    if !require_tool("lines_reach_a_real_rsyslog", "rsyslogd")
        && !std::path::Path::new("/usr/sbin/rsyslogd").exists()
    {
        return;
    }
    let dir = TempDir::new("syslog");
    let sock = dir.join("log.sock");
    let out = dir.join("messages.log");
    let conf = dir.join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            "global(workDirectory=\"{d}\")\n\
             module(load=\"imuxsock\" SysSock.Use=\"off\")\n\
             input(type=\"imuxsock\" Socket=\"{s}\")\n\
             template(name=\"t\" type=\"string\" string=\"%syslogfacility-text%.%syslogseverity-text% %programname%[%procid%]:%msg:::sp-if-no-1st-sp%%msg:::drop-last-lf%\\n\")\n\
             *.* action(type=\"omfile\" file=\"{o}\" template=\"t\")\n",
            d = dir.path().display(),
            s = sock.display(),
            o = out.display()
        ),
    )
    .expect("write rsyslog.conf");
    let rsyslogd = if std::path::Path::new("/usr/sbin/rsyslogd").exists() {
        "/usr/sbin/rsyslogd"
    } else {
        "rsyslogd"
    };
    let mut rsyslog = Command::new(rsyslogd)
        .args(["-n", "-f"])
        .arg(&conf)
        .arg("-i")
        .arg(dir.join("rsyslogd.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rsyslogd");
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let guard = Kill(&mut rsyslog);
    assert!(
        wait_until(Duration::from_secs(10), || sock.exists()),
        "rsyslog socket never appeared"
    );

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
    drop(guard);
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
