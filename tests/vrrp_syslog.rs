//! VRRP state transitions as a real rsyslog receives them: keepalived's wording
//! (`(VI_1) Entering BACKUP STATE (init)`, `(VI_1) Entering MASTER STATE`), ident and pid,
//! facility daemon, severity info, at the default log level, with the reason field.

mod common;

use common::*;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use testkit::{require_root, require_tool, wait_until, Lab, TempDir};

const RSYSLOGD: &str = "/usr/sbin/rsyslogd";

/// An rsyslogd listening on `sock`, writing `facility.severity ident[pid]: msg` lines to `out`.
fn start_rsyslog(dir: &TempDir, sock: &Path, out: &Path) -> Child {
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
    let program = if Path::new(RSYSLOGD).exists() {
        RSYSLOGD
    } else {
        "rsyslogd"
    };
    Command::new(program)
        .args(["-n", "-f"])
        .arg(&conf)
        .arg("-i")
        .arg(dir.join("rsyslogd.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rsyslogd")
}

/// Kills and reaps the rsyslogd we started (by its Child handle) when the test ends.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn transitions_reach_rsyslog_in_keepalived_wording_at_daemon_info() {
    let test = "transitions_reach_rsyslog_in_keepalived_wording_at_daemon_info";
    if !require_root(test) || (!Path::new(RSYSLOGD).exists() && !require_tool(test, "rsyslogd")) {
        return;
    }
    let dir = TempDir::new("vrrp-syslog");
    let sock = dir.join("log.sock");
    let out = dir.join("messages.log");
    let _rsyslog = KillOnDrop(start_rsyslog(&dir, &sock, &out));
    assert!(
        wait_until(Duration::from_secs(10), || sock.exists()),
        "rsyslog socket never appeared"
    );
    let read = || std::fs::read_to_string(&out).unwrap_or_default();

    let lab = Lab::new(&[("lb1", "198.51.100.11/24")]);
    // Default facility (daemon) and level (info): transitions must get through without debug.
    let config = format!(
        "global:\n  node: lb1\n  log:\n    target: syslog\n    syslog_socket: {}\n\
         vrrp_instances:\n  - name: VI_1\n    interface: eth0\n    virtual_router_id: 51\n    priority: 100\n    advert_int: 1\n    virtual_ipaddress: [{VIP}/24]\n",
        sock.display()
    );
    let t0 = Instant::now();
    let node = start(&lab, "lb1", &dir, &config);
    let bound = master_down(100) + Duration::from_secs(1);
    let took = wait_vip(lab.host("lb1"), t0, bound + Duration::from_secs(2));
    println!("alone on the link, lb1 holds the VIP after {took:?} (bound {bound:?})");
    assert!(
        took.is_some_and(|t| t <= bound),
        "no VIP within {bound:?}: {took:?}\nrsyslog:\n{}\nstderr:\n{}",
        read(),
        node.log_text()
    );
    let master = "(VI_1) Entering MASTER STATE";
    assert!(
        wait_until(Duration::from_secs(5), || read().contains(master)),
        "rsyslog output:\n{}\nstderr:\n{}",
        read(),
        node.log_text()
    );

    let text = read();
    let pid = node.pid;
    let prefix = format!("daemon.info vrrplb[{pid}]: ");
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("Entering")).collect();
    println!("rsyslog got:\n  {}", lines.join("\n  "));
    let backup = lines
        .iter()
        .position(|l| l.contains("(VI_1) Entering BACKUP STATE (init)"))
        .unwrap_or_else(|| panic!("no BACKUP (init) line:\n{text}"));
    let to_master = lines
        .iter()
        .position(|l| l.contains(master))
        .unwrap_or_else(|| panic!("no MASTER line:\n{text}"));
    assert!(backup < to_master, "BACKUP (init) must come first:\n{text}");
    assert_eq!(lines.len(), 2, "one transition each:\n{text}");
    for l in &lines {
        assert!(
            l.starts_with(&format!("{prefix}(VI_1) Entering ")),
            "facility/severity/ident/pid or wording wrong: {l}"
        );
        assert!(l.contains(" reason="), "no reason field: {l}");
    }
    assert!(lines[backup].contains("startup"), "{}", lines[backup]);
    assert!(
        lines[to_master].contains("master down timer expired"),
        "{}",
        lines[to_master]
    );
    // With target syslog, nothing but fallbacks would go to stderr.
    assert!(
        node.log_text().trim().is_empty(),
        "lines fell back to stderr:\n{}",
        node.log_text()
    );
}
