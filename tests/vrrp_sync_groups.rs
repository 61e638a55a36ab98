//! `vrrp_sync_groups` end to end (keepalived's `vrrp_sync_group`): two instances of a pair in
//! one group; when one member on the MASTER box goes to FAULT (its weight-0 script fails),
//! the other member follows although nothing of its own failed, so the peer takes both VIPs;
//! when the cause goes, both come back. The group's notify script, keepalived's log line and
//! the notify_fifo lines (INSTANCE and GROUP, in keepalived's order, STOP at shutdown) are
//! checked.

mod common;

use common::*;
use std::process::Stdio;
use std::time::{Duration, Instant};
use testkit::{require_root, wait_until, Lab, TempDir};

const VIP2: &str = "198.51.100.101";

#[test]
fn a_member_in_fault_takes_its_sync_group_with_it_and_back() {
    if !require_root("sync_groups") {
        return;
    }
    let lab = Lab::new(&[("lb1", "198.51.100.11/24"), ("lb2", "198.51.100.12/24")]);
    let dir = TempDir::new("sync-groups");
    // One copy of the group's notify script per box, each logging its arguments to its own file.
    let notify = |node: &str| dir.join(&format!("group-notify-{node}.sh"));
    for node in ["lb1", "lb2"] {
        std::fs::write(notify(node), "#!/bin/sh\necho \"$*\" >> \"$0.log\"\n").expect("script");
        std::fs::set_permissions(
            notify(node),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod");
    }
    let flag = dir.join("fault-flag");
    // lb1 writes its state changes to a FIFO read by this test.
    let fifo = dir.join("lb1.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let fifo_lines = read_fifo(fifo.clone());
    let cfg = |node: &str, p: u8| {
        let (n, f) = (notify(node).display().to_string(), flag.display());
        let fifo_key = if node == "lb1" {
            format!("\n  notify_fifo: {}", fifo.display())
        } else {
            String::new()
        };
        [
            format!("global:\n  node: {node}\n  log: {{ target: stderr }}\n  vrrp_realtime_priority: 50{fifo_key}"),
            format!("vrrp_scripts:\n  chk:\n    script: \"/usr/bin/test ! -e {f}-{node}\"\n    interval: 1\n    weight: 0\n    rise: 1\n    fall: 1"),
            "vrrp_instances:".to_owned(),
            format!("  - name: VI_1\n    interface: eth0\n    virtual_router_id: 51\n    priority: {p}\n    version: 3\n    advert_int: 100ms"),
            format!("    virtual_ipaddress: [{VIP}/24]\n    track_scripts: [chk]"),
            format!("  - name: VI_2\n    interface: eth0\n    virtual_router_id: 52\n    priority: {p}\n    version: 3\n    advert_int: 100ms"),
            format!("    virtual_ipaddress: [{VIP2}/24]"),
            format!("vrrp_sync_groups:\n  - name: G1\n    group: [VI_1, VI_2]\n    notify: {n}\n"),
        ]
        .join("\n")
    };
    let both = |h: &str| lab.host(h).has_address(VIP) && lab.host(h).has_address(VIP2);
    let none = |h: &str| !lab.host(h).has_address(VIP) && !lab.host(h).has_address(VIP2);
    let n1 = start(&lab, "lb1", &dir, &cfg("lb1", 101));
    assert!(
        wait_until(Duration::from_secs(8), || both("lb1")),
        "{}",
        n1.log_text()
    );
    let n2 = start(&lab, "lb2", &dir, &cfg("lb2", 100));
    assert!(
        n2.wait_log("(VI_2) Entering BACKUP STATE", Duration::from_secs(5)),
        "{}",
        n2.log_text()
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(both("lb1") && none("lb2"), "{}", n2.log_text());

    // VI_1's script fails on lb1: VI_1 to FAULT, and VI_2 with it by the group.
    let t0 = Instant::now();
    std::fs::write(format!("{}-lb1", flag.display()), "").expect("flag");
    let moved = wait_until(Duration::from_secs(5), || both("lb2") && none("lb1"));
    println!(
        "sync group: lb2 holds both VIPs {:?} after VI_1's script started failing on lb1",
        t0.elapsed()
    );
    assert!(moved, "{}\n{}", n1.log_text(), n2.log_text());
    let log1 = n1.log_text();
    for needle in [
        "(VI_1) Entering FAULT STATE",
        "VRRP_Group(G1) Syncing instances to FAULT state",
        "(VI_2) Entering FAULT STATE",
        "VRRP_Group(G1) Entering FAULT STATE",
    ] {
        assert!(log1.contains(needle), "no {needle:?} in lb1's log:\n{log1}");
    }
    let notified =
        || std::fs::read_to_string(format!("{}.log", notify("lb1").display())).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(3), || notified()
            .contains("GROUP G1 FAULT 0")),
        "group notify: {}",
        notified()
    );

    // The cause goes: both members leave FAULT and lb1 (101) takes both VIPs back.
    let t1 = Instant::now();
    std::fs::remove_file(format!("{}-lb1", flag.display())).expect("unflag");
    let back = wait_until(Duration::from_secs(8), || both("lb1") && none("lb2"));
    println!(
        "sync group: lb1 holds both VIPs again {:?} after the script recovered",
        t1.elapsed()
    );
    assert!(back, "{}\n{}", n1.log_text(), n2.log_text());
    assert!(
        wait_until(Duration::from_secs(3), || notified()
            .matches("GROUP G1 MASTER 0")
            .count()
            >= 2),
        "group notify: {}",
        notified()
    );

    // An orderly stop: every member STOPs, then the group.
    lab.host("lb1").signal(n1.pid, libc::SIGTERM);
    assert!(lab
        .host("lb1")
        .wait_exit(n1.pid, Duration::from_secs(10))
        .is_some());
    let fifo_text = || fifo_lines.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(
        wait_until(Duration::from_secs(3), || fifo_text()
            .last()
            .is_some_and(|l| l == "GROUP \"G1\" STOP 0")),
        "notify_fifo: {:?}",
        fifo_text()
    );
    let got = fifo_text();
    println!("notify_fifo lines of lb1: {got:?}");
    // Each GROUP line comes after the INSTANCE lines that made it (members in any order).
    let steps: [(&str, &[&str]); 5] = [
        (
            "GROUP \"G1\" MASTER 0",
            &[
                "INSTANCE \"VI_1\" MASTER 101",
                "INSTANCE \"VI_2\" MASTER 101",
            ],
        ),
        // VI_1's own FAULT makes the group's, which then takes VI_2.
        ("GROUP \"G1\" FAULT 0", &["INSTANCE \"VI_1\" FAULT 101"]),
        (
            "GROUP \"G1\" BACKUP 0",
            &[
                "INSTANCE \"VI_2\" FAULT 101",
                "INSTANCE \"VI_1\" BACKUP 101",
            ],
        ),
        (
            "GROUP \"G1\" MASTER 0",
            &[
                "INSTANCE \"VI_1\" MASTER 101",
                "INSTANCE \"VI_2\" MASTER 101",
            ],
        ),
        (
            "GROUP \"G1\" STOP 0",
            &["INSTANCE \"VI_1\" STOP 101", "INSTANCE \"VI_2\" STOP 101"],
        ),
    ];
    let mut at = 0;
    for (group, members) in steps {
        let Some(i) = got[at..].iter().position(|l| l == group) else {
            panic!("no {group:?} after line {at} in {got:#?}");
        };
        for m in members {
            assert!(
                got[at..at + i].iter().any(|l| l == m),
                "{m:?} not between line {at} and {group:?} in {got:#?}"
            );
        }
        at += i + 1;
    }
    assert_eq!(at, got.len(), "GROUP STOP is the last line");
    let groups: Vec<&String> = got.iter().filter(|l| l.starts_with("GROUP")).collect();
    assert!(
        groups.windows(2).all(|w| w[0] != w[1]),
        "a GROUP line repeated: {groups:?}"
    );
}

/// keepalived's other half of `vrrp_sync_group`: a member that steps down to BACKUP (it
/// heard a higher-priority master) takes the whole group to BACKUP, and a member whose own
/// master is gone does not go MASTER while another member still hears a live master. A pair
/// of two-member groups: lb1 (101) holds both VIPs; lb1 is made deaf to VI_2's adverts only
/// (nftables drops VRRP with VRID 52), then lb2 (150) starts. lb2's members go MASTER
/// together; lb1's VI_1 hears the better master and steps down, and VI_2 must follow
/// although it never hears lb2's VI_2 (without the group it would stay MASTER: both boxes
/// would hold VIP2), and it must stay BACKUP although its down timer keeps firing.
#[test]
fn a_member_stepping_down_takes_its_sync_group_to_backup() {
    let test = "sync_groups_backup";
    if !require_root(test) || !testkit::require_tool(test, "nft") {
        return;
    }
    let lab = Lab::new(&[("lb1", "198.51.100.11/24"), ("lb2", "198.51.100.12/24")]);
    let dir = TempDir::new("sync-backup");
    let cfg = |node: &str, p: u8| {
        [
            format!("global:\n  node: {node}\n  log: {{ target: stderr }}\n  vrrp_realtime_priority: 50"),
            "vrrp_instances:".to_owned(),
            format!("  - name: VI_1\n    interface: eth0\n    virtual_router_id: 51\n    priority: {p}\n    version: 3\n    advert_int: 100ms"),
            format!("    virtual_ipaddress: [{VIP}/24]"),
            format!("  - name: VI_2\n    interface: eth0\n    virtual_router_id: 52\n    priority: {p}\n    version: 3\n    advert_int: 100ms"),
            format!("    virtual_ipaddress: [{VIP2}/24]"),
            "vrrp_sync_groups:\n  - name: G1\n    group: [VI_1, VI_2]\n".to_owned(),
        ]
        .join("\n")
    };
    let (lb1, lb2) = (lab.host("lb1"), lab.host("lb2"));
    let both = |h: &testkit::Host| h.has_address(VIP) && h.has_address(VIP2);
    let none = |h: &testkit::Host| !h.has_address(VIP) && !h.has_address(VIP2);
    let n1 = start(&lab, "lb1", &dir, &cfg("lb1", 101));
    assert!(
        wait_until(Duration::from_secs(8), || both(lb1)),
        "{}",
        n1.log_text()
    );
    // lb1 stops hearing VRID 52 (the second byte of the VRRP header).
    lb1.exec_ok(&["nft", "add", "table", "ip", "deaf52"]);
    lb1.exec_ok(&[
        "nft",
        "add",
        "chain",
        "ip",
        "deaf52",
        "input",
        "{ type filter hook input priority 0 ; }",
    ]);
    lb1.exec_ok(&[
        "nft", "add", "rule", "ip", "deaf52", "input", "ip", "protocol", "vrrp", "@th,8,8", "52",
        "drop",
    ]);

    let t0 = Instant::now();
    let n2 = start(&lab, "lb2", &dir, &cfg("lb2", 150));
    let moved = wait_until(Duration::from_secs(5), || both(lb2) && none(lb1));
    println!(
        "sync group BACKUP: lb2 holds both VIPs and lb1 none {:?} after lb2 started",
        t0.elapsed()
    );
    let logs = || {
        format!(
            "--- lb1 ---\n{}\n--- lb2 ---\n{}",
            n1.log_text(),
            n2.log_text()
        )
    };
    assert!(moved, "{}", logs());
    // Stable: lb1's VI_2 never hears lb2's VI_2, its down timer fires again and again, and
    // the group holds it in BACKUP while VI_1 hears lb2.
    std::thread::sleep(Duration::from_secs(2));
    assert!(both(lb2) && none(lb1), "{}", logs());
    let log1 = n1.log_text();
    for needle in [
        "(VI_1) Master received advert from 198.51.100.12 with higher priority 150, ours 101",
        "VRRP_Group(G1) Syncing instances to BACKUP state",
        "(VI_2) Entering BACKUP STATE",
        "(VI_2) master down, but another member of the sync group still hears its master",
    ] {
        assert!(log1.contains(needle), "no {needle:?} in lb1's log:\n{log1}");
    }
    assert_eq!(
        n1.count_log("(VI_2) Entering MASTER STATE"),
        1,
        "{}",
        logs()
    );
    assert!(
        n1.count_log("VRRP_Group(G1) Syncing instances to BACKUP state") == 1,
        "{}",
        logs()
    );
    let log2 = n2.log_text();
    assert!(
        log2.contains("VRRP_Group(G1) Syncing instances to MASTER state"),
        "{log2}"
    );

    // lb1 hears VI_2 again and lb2 stops: lb1's members go MASTER together.
    lb1.exec_ok(&["nft", "delete", "table", "ip", "deaf52"]);
    std::thread::sleep(Duration::from_millis(500));
    let t1 = Instant::now();
    lb2.signal(n2.pid, libc::SIGTERM);
    let back = wait_until(Duration::from_secs(3), || both(lb1) && none(lb2));
    println!(
        "sync group: lb1 holds both VIPs again {:?} after lb2's graceful stop",
        t1.elapsed()
    );
    assert!(back, "{}", logs());
}

/// Failback through a sync group without a lost request (issue 13 §8): lb2 (100) holds both
/// members and serves VIP2 through a frontend gated on VI_2; lb1 (150) returns and preempts.
/// lb2 is deaf to VRID 52, so its VI_2 leaves MASTER only because the group takes it along
/// when VI_1 is preempted; that step-down keeps VIP2 and its listener for the hand-back
/// (HANDBACK after the preempting advert) like a preempted member, so a client polling VIP2
/// every 20 ms loses nothing while its ARP entry moves to lb1. Wall time about 12 s.
#[test]
fn a_sync_group_failback_loses_no_request() {
    let test = "sync_groups_failback";
    if !require_root(test) || !testkit::require_tool(test, "nft") {
        return;
    }
    let lab = Lab::new(&[
        ("lb1", "198.51.100.11/24"),
        ("lb2", "198.51.100.12/24"),
        ("web1", "198.51.100.21/24"),
        ("client", "198.51.100.50/24"),
    ]);
    let dir = TempDir::new("sync-failback");
    let listener = lab
        .host("web1")
        .run_in(|| std::net::TcpListener::bind("198.51.100.21:80").expect("bind web1"));
    let _web1 = Backend::serve_on(listener, "web1");
    let cfg = |node: &str, p: u8| {
        [
            format!("global:\n  node: {node}\n  log: {{ target: stderr }}\n  vrrp_realtime_priority: 50"),
            "vrrp_instances:".to_owned(),
            format!("  - name: VI_1\n    interface: eth0\n    virtual_router_id: 51\n    priority: {p}\n    version: 3\n    advert_int: 100ms"),
            format!("    virtual_ipaddress: [{VIP}/24]"),
            format!("  - name: VI_2\n    interface: eth0\n    virtual_router_id: 52\n    priority: {p}\n    version: 3\n    advert_int: 100ms"),
            format!("    virtual_ipaddress: [{VIP2}/24]"),
            "vrrp_sync_groups:\n  - name: G1\n    group: [VI_1, VI_2]".to_owned(),
            format!("frontends:\n  - name: www\n    bind: [\"{VIP2}:80\"]\n    gate: [VI_2]\n    default_backend: web"),
            "backends:\n  - name: web\n    servers: [{ name: web1, address: \"198.51.100.21:80\" }]\n".to_owned(),
        ]
        .join("\n")
    };
    let (lb1, lb2) = (lab.host("lb1"), lab.host("lb2"));
    let both = |h: &testkit::Host| h.has_address(VIP) && h.has_address(VIP2);
    let none = |h: &testkit::Host| !h.has_address(VIP) && !h.has_address(VIP2);
    // lb2 never hears VRID 52: its VI_2 can only follow VI_1.
    lb2.exec_ok(&["nft", "add", "table", "ip", "deaf52"]);
    lb2.exec_ok(&[
        "nft",
        "add",
        "chain",
        "ip",
        "deaf52",
        "input",
        "{ type filter hook input priority 0 ; }",
    ]);
    lb2.exec_ok(&[
        "nft", "add", "rule", "ip", "deaf52", "input", "ip", "protocol", "vrrp", "@th,8,8", "52",
        "drop",
    ]);
    let n2 = start(&lab, "lb2", &dir, &cfg("lb2", 100));
    assert!(
        wait_until(Duration::from_secs(8), || both(lb2)),
        "{}",
        n2.log_text()
    );
    let url = format!("http://{VIP2}/");
    assert!(
        wait_until(Duration::from_secs(5), || {
            let vip2: std::net::SocketAddr = format!("{VIP2}:80").parse().expect("addr");
            lab.host("client")
                .run_in(move || http_get(vip2, "/", ""))
                .is_some_and(|(s, _)| s == 200)
        }),
        "VIP2 does not answer through lb2:\n{}",
        n2.log_text()
    );

    // The client polls VIP2 every 20 ms while lb1 returns and preempts.
    let client = lab.host("client");
    let mut poll = client.command(BIN);
    poll.args([
        "poll",
        "--url",
        &url,
        "--every",
        "20ms",
        "--for",
        "6s",
        "--timeout",
        "200ms",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    // Owned by the lab until taken back below (killed with it if an assertion fails first).
    let poller = client.spawn(poll);
    std::thread::sleep(Duration::from_millis(1000));
    let t0 = Instant::now();
    let n1 = start(&lab, "lb1", &dir, &cfg("lb1", 150));
    let moved = wait_until(Duration::from_secs(4), || both(lb1) && none(lb2));
    println!(
        "sync group failback: lb1 holds both VIPs and lb2 none {:?} after lb1 started",
        t0.elapsed()
    );
    let logs = || {
        format!(
            "--- lb1 ---\n{}\n--- lb2 ---\n{}",
            n1.log_text(),
            n2.log_text()
        )
    };
    assert!(moved, "{}", logs());
    let out = client
        .take_child(poller)
        .expect("the poller")
        .wait_with_output()
        .expect("vrrplb poll");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    let result = text
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .unwrap_or_else(|| panic!("no RESULT line:\n{text}\n{}", logs()));
    let field = |k: &str| -> u64 {
        result
            .split_whitespace()
            .find_map(|f| f.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {k} in {result}"))
    };
    assert!(field("requests") >= 100, "{result}");
    let log2 = n2.log_text();
    for needle in [
        "VRRP_Group(G1) Syncing instances to BACKUP state",
        "(VI_2) keeping the VIPs 250 ms after stepping down",
        "(VI_2) removing the VIPs 250 ms after stepping down",
    ] {
        assert!(log2.contains(needle), "no {needle:?} in lb2's log:\n{log2}");
    }
    assert_eq!(
        field("failed"),
        0,
        "requests lost on failback:\n{text}\n{}",
        logs()
    );
}
