//! VRRP state transitions as a real rsyslog receives them: keepalived's wording
//! (`(VI_1) Entering BACKUP STATE (init)`, `(VI_1) Entering MASTER STATE`), ident and pid,
//! facility daemon, severity info, at the default log level, with the reason field.

mod common;

use common::*;

use std::time::{Duration, Instant};
use testkit::{require_root, wait_until, Lab, Rsyslog, TempDir};

#[test]
fn transitions_reach_rsyslog_in_keepalived_wording_at_daemon_info() {
    let test = "transitions_reach_rsyslog_in_keepalived_wording_at_daemon_info";
    if !require_root(test) || !Rsyslog::available(test) {
        return;
    }
    let dir = TempDir::new("vrrp-syslog");
    let rsyslog = Rsyslog::start(dir.path());
    let sock = rsyslog.socket.clone();
    let read = || rsyslog.text();

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
