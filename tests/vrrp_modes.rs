//! VRRP modes through the binary: unicast peers, several instances in one process
//! (active/active), and notify scripts called with keepalived's arguments.

mod common;

use common::*;
use std::time::{Duration, Instant};
use testkit::{require_root, wait_until, Lab, TempDir};

#[test]
fn unicast_pair_elects_and_fails_over_without_multicast() {
    if !require_root("unicast_pair") {
        return;
    }
    let lab = Lab::new(&[("lb1", "198.51.100.11/24"), ("lb2", "198.51.100.12/24")]);
    let dir = TempDir::new("unicast");
    // Multicast VRRP is dropped on the bridge's hosts: only unicast adverts can work.
    for h in ["lb1", "lb2"] {
        lab.host(h)
            .exec_ok(&["ip", "route", "add", "blackhole", "224.0.0.18/32"]);
    }
    let uc =
        |me: &str, peer: &str| format!("    unicast_src_ip: {me}\n    unicast_peers: [{peer}]\n");
    let t0 = Instant::now();
    let n1 = start(
        &lab,
        "lb1",
        &dir,
        &pair_config("lb1", 101, &uc("198.51.100.11", "198.51.100.12"), ""),
    );
    let n2 = start(
        &lab,
        "lb2",
        &dir,
        &pair_config("lb2", 100, &uc("198.51.100.12", "198.51.100.11"), ""),
    );
    let took = wait_vip(lab.host("lb1"), t0, Duration::from_secs(8));
    println!("unicast election: lb1 holds the VIP after {took:?}");
    assert!(took.is_some(), "{}", n1.log_text());
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        !lab.host("lb2").has_address(VIP),
        "lb2 does not hear lb1's unicast adverts:\n{}",
        n2.log_text()
    );

    let kill = Instant::now();
    lab.host("lb1").signal(n1.pid, 15);
    let took = wait_vip(lab.host("lb2"), kill, Duration::from_secs(3));
    let bound = skew(100) + Duration::from_millis(500);
    println!("unicast graceful failover: lb2 holds the VIP after {took:?} (bound {bound:?})");
    assert!(took.is_some_and(|t| t <= bound), "{}", n2.log_text());
}

#[test]
fn two_instances_in_one_process_run_active_active_and_notify_with_keepalived_arguments() {
    if !require_root("active_active") {
        return;
    }
    let lab = Lab::new(&[("lb1", "198.51.100.11/24"), ("lb2", "198.51.100.12/24")]);
    let dir = TempDir::new("active-active");
    let vip2 = "198.51.100.101";
    let notify = dir.join("notify.sh");
    std::fs::write(
        &notify,
        "#!/bin/sh\necho \"$(cat /proc/sys/kernel/hostname) $*\" >> \"$0.$1.$2.log\"\n",
    )
    .expect("script");
    std::fs::set_permissions(&notify, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let master_flag = dir.join("master-flag");
    let cfg = |node: &str, p1: u8, p2: u8| {
        let n = notify.display();
        let flag = master_flag.display();
        [
            format!("global:\n  node: {node}\n  log: {{ target: stderr }}\nvrrp_instances:"),
            format!("  - name: VI_1\n    interface: eth0\n    virtual_router_id: 51\n    priority: {p1}"),
            format!("    virtual_ipaddress: [{VIP}/24]\n    notify: {n}\n    notify_master: /usr/bin/touch {flag}-{node}"),
            format!("  - name: VI_2\n    interface: eth0\n    virtual_router_id: 52\n    priority: {p2}"),
            format!("    virtual_ipaddress: [{vip2}/24]\n    notify: {n}\n"),
        ]
        .join("\n")
    };
    let t0 = Instant::now();
    let n1 = start(&lab, "lb1", &dir, &cfg("lb1", 101, 100));
    let n2 = start(&lab, "lb2", &dir, &cfg("lb2", 100, 101));
    // Each box is MASTER of one instance and BACKUP of the other.
    assert!(
        wait_vip(lab.host("lb1"), t0, Duration::from_secs(8)).is_some(),
        "{}",
        n1.log_text()
    );
    assert!(
        wait_until(Duration::from_secs(8), || lab.host("lb2").has_address(vip2)),
        "{}",
        n2.log_text()
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(!lab.host("lb1").has_address(vip2) && !lab.host("lb2").has_address(VIP));
    let st = n1.status();
    assert!(
        st.contains("instance VI_1 state MASTER priority 101"),
        "{st}"
    );
    assert!(
        st.contains("instance VI_2 state BACKUP priority 100"),
        "{st}"
    );

    // notify: `<script> INSTANCE <name> <STATE> <priority>`; notify_master with no arguments.
    let log = |inst: &str| {
        std::fs::read_to_string(format!("{}.INSTANCE.{inst}.log", notify.display()))
            .unwrap_or_default()
    };
    assert!(
        wait_until(Duration::from_secs(3), || log("VI_1")
            .contains("INSTANCE VI_1 MASTER 101")),
        "{}",
        log("VI_1")
    );
    assert!(
        log("VI_1").contains("INSTANCE VI_1 BACKUP 100"),
        "{}",
        log("VI_1")
    );
    assert!(
        log("VI_2").contains("INSTANCE VI_2 MASTER 101"),
        "{}",
        log("VI_2")
    );
    assert!(
        std::path::Path::new(&format!("{}-lb1", master_flag.display())).exists(),
        "notify_master did not run"
    );

    // Stopping lb2 hands VI_2 over to lb1 (priority-0 advert) and runs the STOP notify.
    let stop = Instant::now();
    lab.host("lb2").signal(n2.pid, 15);
    assert!(
        wait_until(Duration::from_secs(3), || lab.host("lb1").has_address(vip2)),
        "{}",
        n1.log_text()
    );
    println!(
        "active/active: lb1 took VI_2 over {:?} after lb2 stopped",
        stop.elapsed()
    );
    assert!(
        wait_until(Duration::from_secs(3), || log("VI_2")
            .contains("INSTANCE VI_2 STOP")),
        "{}",
        log("VI_2")
    );
    assert!(lab.host("lb1").has_address(VIP), "VI_1 lost on lb1");
}
